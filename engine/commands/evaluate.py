"""``python main.py evaluate --data DIR``: the book's table, LUNA16 FROC/CPM and malignancy ROC.

Runs the detector over one split of a LUNA16-format folder, one series at a
time, caching each series' candidates in the output folder (a rerun resumes
and only rescores), then prints the report and writes ``submission.csv``
(LUNA16 format), ``report.json``, ``froc.png`` and ``roc.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

DESCRIPTION = "evaluate the detector on a LUNA16-format split: the book's table, FROC/CPM, malignancy AUC"


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum {minimum}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its "invalid ... value" message
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.commands.analyze import add_erosion_argument

    parser.add_argument("--data", required=True, help="LUNA16-format folder (subset*/<uid>.mhd + annotations CSVs)")
    parser.add_argument("--split", default="val", choices=("val", "test", "train", "all"),
                        help="which series to evaluate (default: val, the project-wide validation split)")
    parser.add_argument("--val-stride", type=_count(1), default=10, help="validation stride of the split (default 10)")
    parser.add_argument("--test-stride", type=_count(0), default=0, help="test stride of the split (default 0: no test)")
    parser.add_argument("--seg", default=None, help="segmentation checkpoint (.pt or the book's .state)")
    parser.add_argument("--cls", default=None, help="nodule classifier checkpoint")
    parser.add_argument("--mal", default=None, help="malignancy classifier checkpoint")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, mps, cpu or auto (default)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: <user data>/runs/evaluate-<dataset>-<split>); reused to resume")
    parser.add_argument("--per-series", action="store_true", help="also print the confusion table of every series")
    parser.add_argument("--nodule-threshold", type=_probability, default=0.5, help="p_nodule threshold (default 0.5)")
    parser.add_argument("--malignancy-threshold", type=_probability, default=0.5, help="p_malignant threshold (default 0.5)")
    parser.add_argument("--max-series", type=_count(1), default=None, help="evaluate only the first N series of the split")
    parser.add_argument("--bootstrap", type=_count(0), default=1000, help="FROC bootstrap resamples (default 1000, 0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_erosion_argument(parser)
    parser.add_argument("--malignancy-at", default="annotation", choices=("annotation", "match"),
                        help="score malignancy by classifying at the annotation centres (default, as the book) "
                             "or from the matched detection")


def build_detector(args: argparse.Namespace) -> tuple[Any, str, Any]:
    """The detector, its fingerprint, and its classify-at-points callable.

    ``--seg/--cls/--mal`` each replace one model; the others are the shipped
    demo weights. Without any of them the demo detector is used.

    Raises:
        CheckpointError: a needed demo weight file is missing, or a checkpoint is unusable.
        DeviceError: the device is not available.
    """
    from engine.detection import Detector, DetectorConfig, default_weight_paths
    from engine.errors import CheckpointError

    config = DetectorConfig(erosion=getattr(args, "erosion", "3d"))
    given = {"segmentation": args.seg, "classifier": args.cls, "malignancy": args.mal}
    if any(given.values()):
        defaults = default_weight_paths()
        paths = {}
        for kind, path in given.items():
            if path is None and not defaults[kind].exists():
                flag = {"segmentation": "--seg", "classifier": "--cls", "malignancy": "--mal"}[kind]
                raise CheckpointError(f"no {flag} given and the demo {kind} weights are missing", defaults[kind])
            paths[kind] = Path(path) if path else defaults[kind]
        detector = Detector.from_checkpoints(
            paths["segmentation"], paths["classifier"], paths["malignancy"], device=args.device, config=config
        )
    else:
        detector = Detector.default(device=args.device, config=config)
    return detector, detector_fingerprint(detector.model_ids, detector.config), detector.malignancy_at


def detector_fingerprint(model_ids: Mapping[str, str], config: Any) -> str:
    """A short id of what decides the candidates: the models' weight ids and the grouping settings.

    Cached series made under another fingerprint are recomputed.
    """
    identity = {
        "models": dict(sorted(model_ids.items())),
        "seg_threshold": getattr(config, "seg_threshold", None),
        "lung_region": getattr(config, "lung_region", None),
    }
    erosion = getattr(config, "erosion", "3d")
    if erosion != "3d":  # the default leaves earlier fingerprints (and their caches) valid
        identity["erosion"] = erosion
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def default_out_dir(data: Path, split: str) -> Path:
    """``<user data>/runs/evaluate-<dataset folder name>-<split>``."""
    from engine.paths import runs_dir

    return runs_dir() / f"evaluate-{data.resolve().name}-{split}"


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.evaluation.dataset import EvaluationSettings, evaluate_dataset
    from engine.evaluation.report import format_report, write_outputs
    from engine.luna import LunaIndex

    settings = EvaluationSettings(
        split=args.split,
        val_stride=args.val_stride,
        test_stride=args.test_stride,
        nodule_threshold=args.nodule_threshold,
        malignancy_threshold=args.malignancy_threshold,
        max_series=args.max_series,
        bootstrap_samples=args.bootstrap,
        seed=args.seed,
        malignancy_at=args.malignancy_at,
    )
    data = Path(args.data)
    index = LunaIndex.open(data, read_candidates=False)
    out_dir = Path(args.out) if args.out else default_out_dir(data, args.split)
    detector, detector_id, classify_at = build_detector(args)
    bar = ProgressBar("evaluate ")
    try:
        result = evaluate_dataset(
            index, detector, out_dir, settings, detector_id=detector_id, classify_at=classify_at, progress=bar
        )
    finally:
        bar.close()
    files = write_outputs(result)
    print(format_report(result, per_series=args.per_series))
    print()
    for name, path in files.items():
        print(f"{name + ':':12}{path}")
    return 0
