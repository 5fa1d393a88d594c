"""``python -m training size-head``: give a malignancy model the nodule's size in mm.

The malignancy CNN sees voxel-indexed crops and so not a nodule's size in mm,
the readers' strongest cue. This command measures each annotated nodule of a
dataset on its classifier crop (:func:`engine.lesion_size.inscribed_diameter_mm`,
the crop cut at the annotation centre as the evaluation does), runs the
model's CNN on the same crops, fits a logistic regression of the malignancy
label on ``(logit of the CNN's probability, ln diameter)`` (Newton's method,
an L2 penalty on the standardised weights), and writes a copy of the model
with those three numbers as its size head (``NoduleClassifier(size_head=True)``);
the CNN's weights are unchanged, so it still shares the classifier's trunk.

Fit it on training series (not on the series you evaluate on): the card of
the shipped model names the data. The metadata records the nodules used, the
AUCs of the CNN alone and with the size on them (resubstitution) and a 5-fold
cross-validated AUC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DESCRIPTION = "fit a malignancy model's size head (its CNN's logit + the nodule's measured diameter) on a dataset"
#: Folds of the reported cross-validated AUC.
FOLDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--data", required=True, help="LUNA16-format dataset with annotations_with_malignancy.csv")
    parser.add_argument("--malignancy", required=True, help="malignancy checkpoint to start from")
    parser.add_argument("--out", required=True, help="checkpoint to write (the model with its size head)")
    parser.add_argument("--split", choices=("train", "all"), default="all",
                        help="fit on every series (default; give it a training-only dataset) or the training split")
    parser.add_argument("--val-stride", type=int, default=10, help="validation stride of --split train (10)")
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the standardised weights (1)")


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Penalised logistic regression on standardised columns, returned on the raw scale.

    Args:
        x: ``(n, k)`` inputs.
        y: ``(n,)`` labels 0/1.
        l2: Penalty on the standardised weights (not the intercept).
        iterations: Newton steps.

    Returns:
        ``(k + 1,)`` float64: the weights of the ``k`` columns, then the intercept.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    penalty = l2 * np.diag(np.r_[0.0, np.ones(x.shape[1])])
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - y) + penalty @ w
        hessian = (z.T * (p * (1.0 - p))) @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    weights = w[1:] / scale
    return np.r_[weights, w[0] - float(weights @ mean)]


def with_head(source, head: str, weights, bias: float, path) -> tuple[object, dict]:
    """A copy of ``source``'s model (a loaded checkpoint) with the fitted ``head`` (``"size_head"`` or
    ``"shape_head"``) set to ``weights`` and ``bias``; the CNN's weights are the source's.

    Returns:
        ``(model, model_args)``.

    Raises:
        ValueError: the source's weights do not fit the model with that head.
    """
    import torch

    from engine.models.classifier import NoduleClassifier

    model_args = {**dict(source.model_args), head: True}
    model = NoduleClassifier(**model_args)
    state = {k: v for k, v in source.model.state_dict().items() if not k.startswith(head + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {f"{head}.weight", f"{head}.bias"}:
        raise ValueError(f"{path}: unexpected weights {unexpected or missing}")
    layer = getattr(model, head)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weights, dtype=torch.float32).reshape(1, -1))
        layer.bias.fill_(float(bias))
    return model, model_args


def cross_validated_auc(x: np.ndarray, y: np.ndarray, l2: float, folds: int = FOLDS, seed: int = 0) -> float:
    """ROC AUC of out-of-fold scores (folds of a seeded permutation)."""
    from engine.metrics.roc import roc_curve

    order = np.random.default_rng(seed).permutation(len(y))
    scores = np.zeros(len(y))
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        coefficients = fit_logistic(x[train], y[train], l2)
        scores[test] = x[test] @ coefficients[:-1] + coefficients[-1]
    return float(roc_curve(np.asarray(y) > 0.5, scores).auc)


def nodule_samples(index, uids, model, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_cnn, diameter_mm, label)`` of every annotated nodule with a malignancy label in ``uids``."""
    import torch

    from engine.crops import CLASSIFIER_CROP, classifier_input, gather_crops
    from engine.geometry import xyz_to_irc_continuous
    from engine.lesion_size import diameters_at

    p_cnn, diameters, labels = [], [], []
    for i, uid in enumerate(uids):
        nodules = [a for a in index.annotations_for(uid) if a.is_malignant is not None]
        if progress is not None:
            progress(i / max(len(uids), 1), f"series {i + 1}/{len(uids)}")
        if not nodules:
            continue
        ct = index.load(uid)
        centers = xyz_to_irc_continuous(ct.geometry, np.array([a.center_xyz for a in nodules], dtype=np.float64))
        crops = gather_crops(ct.hu, centers, CLASSIFIER_CROP)
        with torch.inference_mode():
            probability = model(classifier_input(torch.from_numpy(crops.astype(np.float32))))[1][:, 1]
        p_cnn.append(probability.double().numpy())
        diameters.append(diameters_at(ct.hu, ct.geometry.spacing_irc, centers))
        labels.append(np.array([float(bool(a.is_malignant)) for a in nodules]))
    if not labels:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(p_cnn), np.concatenate(diameters), np.concatenate(labels)


def run(args: argparse.Namespace) -> int:
    """Fit and write; exit status 0, or 2 on bad input."""
    from engine.checkpoints import load_checkpoint, save_checkpoint
    from engine.commands.progress import ProgressBar
    from engine.errors import EngineError
    from engine.lesion_size import logit, size_aware_probability
    from engine.luna import LunaIndex
    from engine.metrics.roc import roc_curve

    try:
        if not args.l2 >= 0:
            raise ValueError("--l2 must be ≥ 0")
        index = LunaIndex.open(args.data, read_candidates=False)
        if not index.has_malignancy:
            raise ValueError(f"{args.data} has no malignancy labels (annotations_with_malignancy.csv)")
        source = load_checkpoint(args.malignancy, "malignancy")
        model = source.model.float().eval()
        uids = list(index.split(args.val_stride).train if args.split == "train" else index.series_uids)
        bar = ProgressBar("size-head ")
        p_cnn, diameters, labels = nodule_samples(index, uids, model, bar)
        bar(1.0, "measured")
        bar.close()
        positives = int(labels.sum())
        if positives < 2 or len(labels) - positives < 2:
            raise ValueError(f"{len(labels)} labelled nodules with {positives} malignant: too few of a class to fit")
        x = np.column_stack([logit(p_cnn), np.log(diameters)])
        a, b, c = fit_logistic(x, labels, args.l2)
        cv_auc = cross_validated_auc(x, labels, args.l2)
        head, model_args = with_head(source, "size_head", [a, b], c, args.malignancy)
        aware = size_aware_probability((a, b, c), p_cnn, diameters)
        fitted = {
            "data": str(Path(args.data).resolve()),
            "split": args.split,
            "nodules": int(len(labels)),
            "malignant": positives,
            "l2": float(args.l2),
            "coefficients": [float(a), float(b), float(c)],
            "auc_cnn": float(roc_curve(labels > 0.5, p_cnn).auc),
            "auc_size_aware": float(roc_curve(labels > 0.5, aware).auc),
            "auc_size_aware_cv": cv_auc,
            "source_sha256": source.sha256,
        }
        metadata = {**dict(source.metadata), "size_head": fitted}
        sha = save_checkpoint(args.out, head, "malignancy", model_args=model_args, metadata=metadata)
    except (EngineError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fitted on {len(labels)} nodules ({positives} malignant) of {len(uids)} series: "
          f"p = sigmoid({a:.3f}·logit(p_cnn) {b:+.3f}·ln(diameter mm) {c:+.3f})")
    print(f"AUC on them: CNN {fitted['auc_cnn']:.3f}, with the size {fitted['auc_size_aware']:.3f} "
          f"({FOLDS}-fold cross-validated {cv_auc:.3f})")
    print(f"wrote {args.out} (sha256 {sha[:12]})")
    return 0
