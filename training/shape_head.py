"""``python -m training shape-head``: give a nodule classifier the candidate's shape.

The detector's false positives at high probability are mostly vessels and
pleura that the CNN takes for nodules. This command runs the detector (its
classifier's CNN alone) over a dataset's series, measures every candidate's
shape on its classifier crop (:mod:`engine.lesion_shape`: Hessian eigenvalues
and smoothed HU at four scales) and its segmented region's size, labels each
candidate as the LUNA16 FROC does (inside an annotated nodule's radius: 1;
on an excluded finding only: left out; else 0), fits a logistic regression of
the label on the :data:`~engine.lesion_shape.INPUT_NAMES` (Newton's method, an
L2 penalty on the standardised weights), and writes a copy of the classifier
with those weights as its shape head (``NoduleClassifier(shape_head=True)``);
the CNN is unchanged. The intercept is then moved so that p ≥ 0.5 gives
``--fp-per-scan`` false positives per scan on the fitting series (the ranking
does not change).

Fit it on training series, with the grouping you detect with. The detections
are cached in ``DATA/shape-head-detections`` (as ``evaluate`` caches them),
so a rerun, or a fit with another ``--l2``, does not detect again; with a
classifier that has no shape head yet, the cache is the one ``evaluate`` of
the same models and grouping writes (a link to it is reused). The metadata records the
data, the counts, and the CPM on the fitting series with the CNN alone and
with the head (resubstitution).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.commands.options import add_grouping_arguments, add_model_arguments

DESCRIPTION = "fit a nodule classifier's shape head (its CNN's logit + Hessian shape features + region size) on a dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR",
                        help="LUNA16-format training dataset(s); their series are pooled")
    parser.add_argument("--out", required=True, help="checkpoint to write (the classifier with its shape head)")
    parser.add_argument("--split", choices=("train", "all"), default="all",
                        help="fit on every series (default; give it a training-only dataset) or the training split")
    parser.add_argument("--val-stride", type=int, default=10, help="validation stride of --split train (10)")
    parser.add_argument("--l2", type=float, default=0.3, help="L2 penalty on the standardised weights (0.3)")
    parser.add_argument("--fp-per-scan", type=float, default=1.0,
                        help="false positives per fitting scan at p ≥ 0.5, where the intercept is put (1)")
    add_model_arguments(parser, precision=False, backend=False)
    add_grouping_arguments(parser)


def labelled_candidates(index, uid: str, record) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, label)`` of a series' candidates: label 1 inside a nodule's radius; ``keep``
    False for candidates on an excluded finding only (the FROC ignores them)."""
    from engine.metrics.matching import luna_hit_matrix

    def arrays(items):
        return (np.array([a.center_xyz for a in items], dtype=np.float64).reshape(-1, 3),
                np.array([a.diameter_mm for a in items], dtype=np.float64))

    nodules, excluded = arrays(index.annotations_for(uid)), arrays(index.excluded_for(uid))
    on_nodule = luna_hit_matrix(*nodules, record.center_xyz).any(axis=0)
    on_excluded = luna_hit_matrix(*excluded, record.center_xyz).any(axis=0)
    return on_nodule | ~on_excluded, on_nodule.astype(np.float64)


def fitting_cpm(series: list[tuple], scores: list[np.ndarray]) -> float:
    """CPM over the fitting series ``(index, uid, centres xyz)`` of the candidates scored ``scores``."""
    from engine.metrics.froc import compute_froc, score_scan
    from engine.metrics.records import annotation_arrays

    scans = []
    for (index, uid, xyz), score in zip(series, scores):
        n_xyz, n_diam, _ = annotation_arrays(index.annotations_for(uid))
        x_xyz, x_diam, _ = annotation_arrays(index.excluded_for(uid))
        scans.append(score_scan(uid, n_xyz, n_diam, x_xyz, x_diam, xyz, score))
    return compute_froc(scans, bootstrap_samples=0).cpm


def intercept_shift(logits: np.ndarray, negatives: np.ndarray, n_scans: int, fp_per_scan: float) -> float:
    """What to add to the logits so that ``round(fp_per_scan · n_scans)`` negatives stay above 0."""
    z = np.sort(np.asarray(logits, dtype=np.float64)[np.asarray(negatives, dtype=bool)])[::-1]
    k = int(round(fp_per_scan * n_scans))
    if z.size == 0:
        return 0.0
    if k >= z.size:
        return float(-z[-1] + 1e-6)
    return float(-(z[k] + (z[k - 1] - z[k]) / 2.0)) if k > 0 else float(-z[0] - 1e-6)


def run(args: argparse.Namespace) -> int:
    """Detect (cached), measure, fit and write; exit status 0, or 2 on bad input."""
    from engine.checkpoints import load_checkpoint, save_checkpoint
    from engine.commands.evaluate import detector_fingerprint
    from engine.commands.options import grouping_from_args, model_paths_from_args
    from engine.commands.progress import ProgressBar
    from engine.detection import Detector
    from engine.detection.settings import DetectorConfig
    from engine.detection.weights import checkpoint_paths
    from engine.errors import EngineError
    from engine.evaluation.dataset import series_detections
    from engine.lesion_shape import INPUT_NAMES, features_at, head_inputs, shape_aware_probability
    from engine.luna import LunaIndex
    from training.size_head import fit_logistic, with_head

    try:
        if not args.l2 >= 0 or not args.fp_per_scan >= 0:
            raise ValueError("--l2 and --fp-per-scan must be ≥ 0")
        indexes = [LunaIndex.open(data, read_candidates=False) for data in args.data]
        paths = checkpoint_paths(**model_paths_from_args(args))
        source = load_checkpoint(paths["classifier"], "classifier")
        config = DetectorConfig(grouping=grouping_from_args(args))
        detector = Detector(paths["segmentation"], paths["classifier"], paths["malignancy"], device=args.device, config=config)
        had_head = detector.classifier.shape_coefficients() is not None
        detector.classifier.shape_head = None  # detect with the CNN alone: its probabilities are the head's input
        detector_id = detector_fingerprint(detector.model_ids, detector.config) + ("-cnn" if had_head else "")
        todo = [(index, uid) for index in indexes
                for uid in (index.split(args.val_stride).train if args.split == "train" else index.series_uids)]
        bar = ProgressBar("shape-head ")
        series, inputs, labels, keeps, p_cnn = [], [], [], [], []
        for i, (index, uid) in enumerate(todo):
            report = lambda f, text, i=i: bar((i + min(max(f, 0.0), 0.9)) / len(todo), f"{i + 1}/{len(todo)} {text}")
            record, _, _ = series_detections(index, uid, index.annotations_for(uid), detector,
                                             Path(index.root) / "shape-head-detections", detector_id,
                                             False, None, report, None)
            report(0.9, "measuring")
            ct = index.load(uid)
            spacing = ct.geometry.spacing_irc
            features = features_at(ct.hu, spacing, record.center_irc)
            inputs.append(head_inputs(record.p_nodule, features, record.voxel_count, spacing))
            keep, label = labelled_candidates(index, uid, record)
            keeps.append(keep)
            labels.append(label)
            p_cnn.append(record.p_nodule)
            series.append((index, uid, record.center_xyz))
        bar(1.0, "measured")
        bar.close()
        x = np.concatenate(inputs) if inputs else np.zeros((0, len(INPUT_NAMES)))
        y = np.concatenate(labels) if labels else np.zeros(0)
        keep = np.concatenate(keeps) if keeps else np.zeros(0, bool)
        positives = int(y[keep].sum())
        if positives < 2 or int(keep.sum()) - positives < 2:
            raise ValueError(f"{int(keep.sum())} candidates with {positives} on a nodule: too few of a class to fit")
        coefficients = fit_logistic(x[keep], y[keep], args.l2)
        logits = x @ coefficients[:-1] + coefficients[-1]
        coefficients[-1] += intercept_shift(logits[keep], (y == 0)[keep], len(todo), args.fp_per_scan)
        cuts = np.cumsum([len(v) for v in labels])[:-1]
        aware = np.split(shape_aware_probability(coefficients, x), cuts)
        cpm_cnn = fitting_cpm(series, p_cnn)
        cpm_aware = fitting_cpm(series, aware)
        head, model_args = with_head(source, "shape_head", coefficients[:-1], coefficients[-1], paths["classifier"])
        n_nodules = sum(len(index.annotations_for(uid)) for index, uid in todo)
        fitted = {
            "data": [str(Path(data).resolve()) for data in args.data],
            "split": args.split,
            "series": len(todo),
            "nodules": int(n_nodules),
            "candidates": int(keep.sum()),
            "candidates_on_nodules": positives,
            "l2": float(args.l2),
            "fp_per_scan_at_half": float(args.fp_per_scan),
            "inputs": list(INPUT_NAMES),
            "coefficients": [float(v) for v in coefficients],
            "cpm_cnn": float(cpm_cnn),
            "cpm_shape_aware": float(cpm_aware),
            "grouping": config.grouping.as_dict(),
            "source_sha256": source.sha256,
        }
        metadata = {**dict(source.metadata), "shape_head": fitted}
        sha = save_checkpoint(args.out, head, "classifier", model_args=model_args, metadata=metadata)
    except (EngineError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fitted on {int(keep.sum())} candidates ({positives} on {n_nodules} nodules) of {len(todo)} series")
    print(f"CPM on them (resubstitution): CNN {cpm_cnn:.3f}, with the shape head {cpm_aware:.3f}")
    print(f"wrote {args.out} (sha256 {sha[:12]})")
    return 0
