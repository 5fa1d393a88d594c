"""``python -m training mine-negatives``: the detector's own false positives as classifier negatives.

The nodule classifier learns from ``candidates.csv``, whose negatives come
from another candidate detector. At inference it sees the segmentation's
candidates instead (airway walls, vessel branchings, the table, fragments of
tissue), which it never saw in training. This command runs the detector over
the training series, keeps per series the ``per_series`` highest-scoring
candidates that lie on no annotated nodule and on no excluded finding, and
writes a candidates CSV: the original rows (or a seeded fraction of the
training series' original negatives) plus those hard negatives as class 0. With
``--positives`` it also writes, as class 1, every detection that matches an
annotated nodule (inside its radius), so the classifier
learns nodules as the detector centres them, not only at the annotation
centres (the training's offset augmentation jitters them further). Train with it via
``python -m training classifier --candidates FILE``.

Validation series are left alone by default, so validation keeps measuring
the same thing.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from engine.commands.options import add_grouping_arguments, add_model_arguments, grouping_from_args, model_paths_from_args

DESCRIPTION = "run the detector over the training series and write its false positives as extra classifier negatives"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--data", required=True, help="LUNA16-format dataset folder")
    parser.add_argument("--out", required=True, help="candidates CSV to write (e.g. DATA/candidates_mined.csv)")
    parser.add_argument("--candidates", help="candidates CSV to start from (default DATA/candidates.csv)")
    parser.add_argument("--per-series", type=int, default=100, help="hard negatives kept per series (100)")
    parser.add_argument("--keep-negatives", type=float, default=1.0,
                        help="fraction of the training series' original negative rows kept, chosen with --seed"
                             " (1 = all; validation series keep all theirs)")
    parser.add_argument("--split", choices=("train", "all"), default="train",
                        help="mine the training series only (default) or every series")
    parser.add_argument("--val-stride", type=int, default=10, help="validation stride of the split (10)")
    parser.add_argument("--max-series", type=int, help="mine only the first N series of the split")
    parser.add_argument("--series", metavar="FILE",
                        help="mine only the series listed in FILE (one uid per line, e.g. a seriesuids.csv) and thin"
                             " only their negatives; e.g. series just added with demo-data --append")
    parser.add_argument("--seed", type=int, default=0, help="seed of --keep-negatives (0)")
    parser.add_argument("--positives", action="store_true",
                        help="also write the detections that match an annotated nodule as class 1 (the nodules as"
                             " the detector centres them)")
    add_model_arguments(parser, precision=False)
    add_grouping_arguments(parser)


def hard_negatives(
    center_xyz: np.ndarray,
    p_nodule: np.ndarray,
    avoid_xyz: np.ndarray,
    avoid_radius_mm: np.ndarray,
    per_series: int,
) -> np.ndarray:
    """The highest-scoring detections outside every avoided sphere.

    Args:
        center_xyz: ``(N, 3)`` detection centres, LPS mm.
        p_nodule: ``(N,)`` their nodule probabilities.
        avoid_xyz: ``(M, 3)`` centres of nodules and excluded findings.
        avoid_radius_mm: ``(M,)`` radius around each that no negative may fall in.
        per_series: How many to keep at most.

    Returns:
        ``(K, 3)`` centres, highest ``p_nodule`` first (ties: detection order), K ≤ per_series.
    """
    center_xyz = np.asarray(center_xyz, np.float64).reshape(-1, 3)
    avoid_xyz = np.asarray(avoid_xyz, np.float64).reshape(-1, 3)
    free = np.ones(len(center_xyz), bool)
    if len(avoid_xyz) and len(center_xyz):
        distance = np.linalg.norm(center_xyz[:, None, :] - avoid_xyz[None, :, :], axis=2)
        free = np.all(distance >= np.asarray(avoid_radius_mm, np.float64)[None, :], axis=1)
    order = np.argsort(-np.asarray(p_nodule, np.float64)[free], kind="stable")
    return center_xyz[free][order[: max(per_series, 0)]]


def matched_positives(center_xyz: np.ndarray, nodules: Sequence[Any]) -> np.ndarray:
    """The detections inside an annotated nodule's radius (closer to its centre than half its diameter).

    Args:
        center_xyz: ``(N, 3)`` detection centres, LPS mm.
        nodules: Annotations with ``center_xyz`` and ``diameter_mm``.

    Returns:
        ``(K, 3)`` centres, in detection order.
    """
    from engine.metrics.matching import book_match_matrix

    center_xyz = np.asarray(center_xyz, np.float64).reshape(-1, 3)
    if not len(nodules) or not len(center_xyz):
        return center_xyz[:0]
    truth = np.asarray([a.center_xyz for a in nodules], np.float64).reshape(-1, 3)
    diameter = np.asarray([float(a.diameter_mm) for a in nodules], np.float64)
    return center_xyz[book_match_matrix(truth, diameter, center_xyz, ratio=0.5).any(axis=0)]


@dataclass
class Mined:
    """What :func:`mine` found: per series uid, ``(K, 3)`` LPS centres."""

    negatives: dict[str, np.ndarray] = field(default_factory=dict)
    positives: dict[str, np.ndarray] = field(default_factory=dict)


def avoid_spheres(nodules: Sequence[Any], excluded: Sequence[Any], unknown_mm: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Centres and radii no negative may fall in: one diameter (at least 5 mm) around each
    nodule, so crops showing most of a nodule are never labelled negative, and around each
    excluded finding (``unknown_mm`` when it has no diameter)."""
    centres, radii = [], []
    for a in nodules:
        centres.append(a.center_xyz)
        radii.append(max(float(a.diameter_mm), 5.0))
    for a in excluded:
        centres.append(a.center_xyz)
        radii.append(float(a.diameter_mm) if a.diameter_mm > 0 else unknown_mm)
    return np.asarray(centres, np.float64).reshape(-1, 3), np.asarray(radii, np.float64)


def write_candidates(
    source: Path,
    mined: Mapping[str, np.ndarray],
    out: Path,
    keep_negatives: float = 1.0,
    seed: int = 0,
    thin_series: set[str] | None = None,
    positives: Mapping[str, np.ndarray] | None = None,
) -> tuple[int, int]:
    """Copy ``source`` (class-1 rows always, class-0 rows with probability ``keep_negatives``)
    and append the mined centres as class 0 (and ``positives`` as class 1); written atomically.

    Args:
        thin_series: The series whose negatives ``keep_negatives`` thins (the
            training series); ``None`` thins every series. Validation series
            keep all their rows, so validation measures the same thing as before.

    Returns:
        ``(original rows kept, mined rows added)``.
    """
    from engine.files import atomic_open
    from engine.luna import CANDIDATE_COLUMNS

    rng = np.random.default_rng(seed)
    counts = {"kept": 0, "added": 0}

    def write(handle) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CANDIDATE_COLUMNS)
        with source.open(newline="", encoding="utf-8") as src:
            for row in csv.DictReader(src):
                is_negative = row["class"].strip() in ("0", "0.0")
                thinned = thin_series is None or row["seriesuid"].strip() in thin_series
                if is_negative and thinned and keep_negatives < 1.0 and rng.random() >= keep_negatives:
                    continue
                writer.writerow([row[c] for c in CANDIDATE_COLUMNS])
                counts["kept"] += 1
        for label, rows in ((0, mined), (1, positives or {})):
            for uid, centres in rows.items():
                for x, y, z in np.asarray(centres, np.float64).reshape(-1, 3):
                    writer.writerow([uid, repr(float(x)), repr(float(y)), repr(float(z)), label])
                    counts["added"] += 1

    with atomic_open(out) as handle:
        write(handle)
    return counts["kept"], counts["added"]


def mine(
    index: Any,
    uids: Iterable[str],
    detect: Callable[[Any], Any],
    per_series: int,
    progress: Callable[[int, int, str], None] | None = None,
) -> Mined:
    """Detect in each series and keep its hard negatives and its detections on nodules.

    Args:
        index: A :class:`engine.luna.LunaIndex`.
        uids: Series to mine.
        detect: ``detect(ct) -> DetectionResult`` (e.g. ``Detector.detect``).
        per_series: Hard negatives kept per series.
        progress: Called as ``progress(done, total, uid)`` after each series.

    Returns:
        A :class:`Mined`.
    """
    from engine.io.ct import load_ct

    uids = list(uids)
    mined = Mined()
    for done, uid in enumerate(uids, start=1):
        result = detect(load_ct(index.path_for(uid)))
        xyz = np.asarray([c.center_xyz for c in result.candidates], np.float64).reshape(-1, 3)
        p = np.asarray([c.p_nodule for c in result.candidates], np.float64)
        nodules = index.annotations_for(uid)
        avoid, radii = avoid_spheres(nodules, index.excluded_for(uid))
        mined.negatives[uid] = hard_negatives(xyz, p, avoid, radii, per_series)
        mined.positives[uid] = matched_positives(xyz, nodules)
        if progress is not None:
            progress(done, len(uids), uid)
    return mined


def read_uid_list(path: Path) -> set[str]:
    """Series uids listed one per line (first comma-separated field; blank lines skipped).

    Raises:
        ValueError: the file cannot be read or lists nothing.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the series list ({exc})") from None
    uids = {line.split(",")[0].strip() for line in lines if line.strip()}
    if not uids:
        raise ValueError(f"{path}: the series list is empty")
    return uids


def run(args: argparse.Namespace) -> int:
    """Mine and write; exit status 0, or 2 on a dataset or checkpoint error."""
    from engine.commands.progress import ProgressBar
    from engine.detection import Detector, DetectorConfig
    from engine.errors import EngineError
    from engine.luna import LunaIndex

    try:
        if not 0.0 <= args.keep_negatives <= 1.0:
            raise ValueError("--keep-negatives must be between 0 and 1")
        index = LunaIndex.open(args.data, require_candidates=True, candidates=args.candidates)
        split = index.split(args.val_stride)
        uids = list(split.train if args.split == "train" else index.series_uids)
        thin = set(split.train)
        if args.series:
            wanted = read_uid_list(Path(args.series))
            unknown = sorted(wanted - set(index.series_uids))
            if unknown:
                raise ValueError(f"{args.series}: {len(unknown)} series not in the dataset (first: {unknown[0]})")
            uids = [u for u in uids if u in wanted]
            thin &= wanted
        uids = uids[: args.max_series]
        config = DetectorConfig(grouping=grouping_from_args(args))
        detector = Detector.from_checkpoints(**model_paths_from_args(args), device=args.device, config=config)
        bar = ProgressBar("mine ")
        bar(0.0, f"0/{len(uids)} series")
        mined = mine(index, uids, detector.detect, args.per_series,
                     lambda done, total, uid: bar(done / max(total, 1), f"{done}/{total} series"))
        bar.close()
        source = Path(args.candidates) if args.candidates else Path(args.data) / "candidates.csv"
        positives = mined.positives if args.positives else None
        kept, added = write_candidates(source, mined.negatives, Path(args.out), args.keep_negatives, args.seed, thin,
                                       positives)
    except (EngineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_pos = sum(len(v) for v in positives.values()) if positives else 0
    print(f"{len(mined.negatives)} series mined: {added - n_pos} hard negatives and {n_pos} detector positives"
          f" added to {kept} original rows -> {args.out}")
    print(f"train with: python -m training classifier --data {args.data} --candidates {args.out} ...")
    return 0
