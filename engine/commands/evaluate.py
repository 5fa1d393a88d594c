"""``python main.py evaluate --data DIR``: the book's table, LUNA16 FROC/CPM and malignancy ROC.

Runs the detector over one split of a LUNA16-format folder, one series at a
time, caching each series' candidates in the output folder (a rerun resumes
and only rescores), then prints the report and writes ``submission.csv``
(LUNA16 format), ``report.json``, ``froc.png`` and ``roc.png``.
Under ``torchrun --nproc_per_node N`` the series are shared among the
processes (:mod:`engine.evaluation.distributed`) and rank 0 reports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from engine.commands.options import add_grouping_arguments, add_model_arguments, grouping_from_args, model_paths_from_args
from engine.detection.settings import DetectorConfig

if TYPE_CHECKING:
    import numpy as np

    from engine.detection import Detector
    from engine.io.volume import CtVolume

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
    parser.add_argument("--data", required=True, help="LUNA16-format folder (subset*/<uid>.mhd + annotations CSVs)")
    parser.add_argument("--split", default="val", choices=("val", "test", "train", "all"),
                        help="which series to evaluate (default: val, the project-wide validation split)")
    parser.add_argument("--val-stride", type=_count(1), default=10, help="validation stride of the split (default 10)")
    parser.add_argument("--test-stride", type=_count(0), default=0, help="test stride of the split (default 0: no test)")
    add_model_arguments(parser, precision=False)
    parser.add_argument("--out", default=None,
                        help="output folder (default: <user data>/runs/evaluate-<dataset>-<split>); reused to resume")
    parser.add_argument("--per-series", action="store_true", help="also print the confusion table of every series")
    parser.add_argument("--nodule-threshold", type=_probability, default=0.5, help="p_nodule threshold (default 0.5)")
    parser.add_argument("--malignancy-threshold", type=_probability, default=0.5, help="p_malignant threshold (default 0.5)")
    parser.add_argument("--max-series", type=_count(1), default=None, help="evaluate only the first N series of the split")
    parser.add_argument("--bootstrap", type=_count(0), default=1000, help="FROC bootstrap resamples (default 1000, 0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_grouping_arguments(parser)
    parser.add_argument("--malignancy-at", default="annotation", choices=("annotation", "match"),
                        help="score malignancy by classifying at the annotation centres (default, as the book) "
                             "or from the matched detection")


def build_detector(args: argparse.Namespace) -> tuple[Detector, str, Callable[[CtVolume, np.ndarray], np.ndarray]]:
    """The detector, its fingerprint, and its classify-at-points callable.

    ``--seg/--cls/--mal`` each replace one model; the others are the shipped
    demo weights.

    Raises:
        CheckpointError: a needed checkpoint file is missing, or a checkpoint is unusable.
        DeviceError: the device is not available.
    """
    from engine.detection import Detector

    config = DetectorConfig(grouping=grouping_from_args(args), backend=args.backend)
    detector = Detector.from_checkpoints(**model_paths_from_args(args), device=args.device, config=config)
    return detector, detector_fingerprint(detector.model_ids, detector.config), detector.malignancy_at


def detector_fingerprint(model_ids: Mapping[str, str], config: DetectorConfig) -> str:
    """A short id of what decides the candidates: the models' weight ids and the grouping settings.

    Cached series made under another fingerprint are recomputed. The grouping
    settings enter as :meth:`~engine.detection.settings.GroupingSettings.as_dict`:
    the threshold, the method and every setting the method uses, at its default
    or not, so a changed default (``peaks`` for ``components``, a new
    ``smooth_mm``) never lets a cache made under the old one pass for the new.
    """
    identity = {
        "models": dict(sorted(model_ids.items())),
        "lung_region": config.lung_region,
        **config.grouping.as_dict(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def default_out_dir(data: Path, split: str) -> Path:
    """``<user data>/runs/evaluate-<dataset folder name>-<split>``."""
    from engine.paths import runs_dir

    return runs_dir() / f"evaluate-{data.resolve().name}-{split}"


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.evaluation.dataset import EvaluationSettings, evaluate_dataset
    from engine.evaluation.distributed import barrier, detect_share, leave, rank_device, ranks_from_environment
    from engine.evaluation.report import format_report, write_outputs
    from engine.files import check_output_folder
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
    for line in index.notes:
        print(f"note: {line}")
    out_dir = Path(args.out) if args.out else default_out_dir(data, args.split)
    check_output_folder(out_dir, [data, *(p for p in model_paths_from_args(args).values() if p)])
    ranks = ranks_from_environment()  # several processes under torchrun: each detects its share first
    args.device = rank_device(args.device, ranks)
    detector, detector_id, classify_at = build_detector(args)
    try:
        if ranks.distributed:
            bar = ProgressBar(f"rank {ranks.rank} ")
            try:
                count = detect_share(index, detector, out_dir, settings, ranks,
                                     detector_id=detector_id, classify_at=classify_at, progress=bar)
            finally:
                bar.close()
            barrier(ranks)
            if ranks.rank != 0:
                print(f"rank {ranks.rank}: {count} series detected into {out_dir}; rank 0 writes the report")
                return 0
        bar = ProgressBar("evaluate ")
        try:
            result = evaluate_dataset(
                index, detector, out_dir, settings, detector_id=detector_id, classify_at=classify_at, progress=bar
            )
        finally:
            bar.close()
    finally:
        leave(ranks)
    files = write_outputs(result)
    print(format_report(result, per_series=args.per_series))
    print()
    for name, path in files.items():
        print(f"{name + ':':12}{path}")
    return 0
