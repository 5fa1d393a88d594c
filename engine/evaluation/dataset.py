"""Evaluate a detector on a LUNA16-format dataset: the book's table, FROC/CPM, malignancy ROC.

:func:`evaluate_dataset` runs any detector-like object (``detect(ct, progress,
cancelled)`` returning something with ``.candidates``) over the series of one
split, one series at a time: each series' candidates are cached in
``<out>/series/`` (so a rerun resumes), scored at once, appended to the LUNA16
submission CSV, and dropped — memory stays flat over the 888 real series.

Malignancy AUC is computed on the annotated nodules with a malignancy label.
The model's score for a nodule comes, by default, from classifying a crop at the
annotation centre (``malignancy_at="annotation"``, the book's way and the fair
comparison with the diameter baseline, which also knows where the nodule is),
through the ``classify_at`` callable. With ``malignancy_at="match"`` (or when no
``classify_at`` is given) it is the ``p_malignant`` of the most nodule-like
detection matching the nodule (book rule); nodules no detection matches are then
left out of the model's ROC, and the diameter baseline is reported both on the
same nodules and on all of them.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from engine.io.volume import CtVolume
from engine.errors import CancelledError, DatasetError
from engine.evaluation.cache import SeriesDetections, load_series, save_series
from engine.evaluation.stages import (
    NoduleStage,
    StageSummary,
    attributes_for,
    max_probability_within,
    nodule_stages,
    read_attributes,
    summarize_stages,
)
from engine.files import atomic_open
from engine.luna import Annotation, LunaIndex
from engine.metrics.confusion import ConfusionTable, confusion_counts
from engine.metrics.froc import MAX_MARKS_PER_SCAN, FrocResult, ScanScore, compute_froc, kept_marks_mask, score_scan
from engine.metrics.matching import book_match_matrix
from engine.metrics.records import annotation_arrays, group_by_series
from engine.metrics.roc import RocCurve, diameter_baseline_roc, roc_curve

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]
#: ``classify_at(ct, centers_xyz (T, 3) LPS mm) -> p_malignant (T,)``.
ClassifyAt = Callable[[CtVolume, np.ndarray], np.ndarray]

SUBMISSION_HEADER = ("seriesuid", "coordX", "coordY", "coordZ", "probability")
SUBMISSION_NAME = "submission.csv"


class DetectorLike(Protocol):
    """What :func:`evaluate_dataset` needs of a detector."""

    def detect(self, ct: CtVolume, progress: Progress | None = None, cancelled: Cancelled | None = None) -> Any:
        """Return an object whose ``candidates`` have ``center_xyz``, ``p_nodule``, ``p_malignant``."""
        ...


@dataclass(frozen=True)
class EvaluationSettings:
    """How to evaluate.

    Args:
        split: ``val``, ``test``, ``train`` or ``all`` (the project-wide split).
        val_stride, test_stride: The split's strides (see ``engine.luna.split_series``).
        nodule_threshold: ``p_nodule`` at or above which a candidate is a nodule.
        malignancy_threshold: ``p_malignant`` at or above which a nodule is malignant.
        max_series: Evaluate only the first N series of the split (None = all).
        max_marks: LUNA16 marks per scan.
        bootstrap_samples: FROC bootstrap resamples (0 = none).
        seed: The bootstrap's seed.
        malignancy_at: ``annotation`` or ``match`` (see the module docstring).
    """

    split: str = "val"
    val_stride: int = 10
    test_stride: int = 0
    nodule_threshold: float = 0.5
    malignancy_threshold: float = 0.5
    max_series: int | None = None
    max_marks: int = MAX_MARKS_PER_SCAN
    bootstrap_samples: int = 1000
    seed: int = 0
    malignancy_at: str = "annotation"

    def __post_init__(self) -> None:
        if self.malignancy_at not in ("annotation", "match"):
            raise ValueError(f"malignancy_at must be 'annotation' or 'match', got {self.malignancy_at!r}")
        if self.max_series is not None and self.max_series < 1:
            raise ValueError("max_series must be at least 1")


@dataclass(frozen=True)
class SeriesOutcome:
    """One series' share of the evaluation.

    Args:
        series_uid: The series.
        confusion: Its book confusion table.
        scan: Its FROC contribution.
        n_candidates: Candidates the detector produced.
        seconds: Detection wall time (of the run that produced the cache), s.
        cached: Whether the detections came from the cache.
    """

    series_uid: str
    confusion: ConfusionTable
    scan: ScanScore
    n_candidates: int
    seconds: float
    cached: bool


@dataclass(frozen=True)
class MalignancyResult:
    """Malignancy ROC of the model and of the diameter baseline on annotated nodules.

    Args:
        source: ``annotation``, ``match``, or ``none`` (no malignancy model or labels).
        model: The model's ROC on the nodules it scored, or ``None``.
        baseline: Diameter baseline on the same nodules as ``model``.
        baseline_all: Diameter baseline on every labelled nodule.
        n_labelled: Nodules with a malignancy label.
        n_scored: Of those, the ones the model scored.
        note: Why something is missing, in words (empty when all is there).
    """

    source: str
    model: RocCurve | None
    baseline: RocCurve
    baseline_all: RocCurve
    n_labelled: int
    n_scored: int
    note: str = ""


@dataclass(frozen=True)
class EvaluationResult:
    """Everything ``evaluate`` measured.

    Args:
        settings: The settings used.
        data_root: The dataset folder.
        out_dir: Where caches and outputs are.
        series: Per-series outcomes, in evaluation order.
        confusion: The summed book table.
        froc: LUNA16 FROC/CPM.
        malignancy: Malignancy ROC vs the diameter baseline.
        has_malignancy_model: Whether the candidates carried ``p_malignant``.
        submission_csv: The LUNA16 submission file written.
        notes: Things the user should know (stale caches recomputed, fallbacks).
        stages: Where the nodules were lost (segmentation, grouping, classification) and
            the sensitivity by size, kind and location (:mod:`engine.evaluation.stages`).
    """

    settings: EvaluationSettings
    data_root: Path
    out_dir: Path
    series: tuple[SeriesOutcome, ...]
    confusion: ConfusionTable
    froc: FrocResult
    malignancy: MalignancyResult
    has_malignancy_model: bool
    submission_csv: Path
    notes: tuple[str, ...] = ()
    stages: StageSummary | None = None

    @property
    def n_cached(self) -> int:
        """Series whose detections were reused from the cache."""
        return sum(s.cached for s in self.series)

    @property
    def detect_seconds(self) -> float:
        """Detection wall time summed over series (as recorded in the cache), s."""
        return float(sum(s.seconds for s in self.series))


def split_series_uids(index: LunaIndex, settings: EvaluationSettings) -> tuple[str, ...]:
    """The series ``settings`` selects, in sorted order.

    Raises:
        DatasetError: the split holds no series.
    """
    uids = index.split(settings.val_stride, settings.test_stride).of(settings.split)
    if settings.max_series is not None:
        uids = uids[: settings.max_series]
    if not uids:
        raise DatasetError(
            f"the {settings.split!r} split is empty (val stride {settings.val_stride}, "
            f"test stride {settings.test_stride}, {len(index.series_paths)} series on disk)",
            index.root,
        )
    return uids


def evaluate_dataset(
    index: LunaIndex,
    detector: DetectorLike,
    out_dir: str | Path,
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    detector_id: str = "",
    classify_at: ClassifyAt | None = None,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> EvaluationResult:
    """Detect on every series of a split (resumably) and score the results.

    Args:
        index: The dataset.
        detector: Any object with ``detect(ct, progress, cancelled)``.
        out_dir: Folder for the per-series cache and the submission CSV (created).
        settings: What to evaluate and how.
        detector_id: Fingerprint of the models; cached series made with another
            fingerprint are recomputed.
        classify_at: Malignancy at given centres (see the module docstring).
        progress: ``progress(fraction, text)`` over the whole run.
        cancelled: Polled between series and passed to the detector.

    Returns:
        The :class:`EvaluationResult`; the submission CSV is already written.

    Raises:
        DatasetError: the split is empty; CancelledError: ``cancelled()`` became true;
        any error of loading a series or of the detector.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uids = split_series_uids(index, settings)
    by_series = group_by_series(index.annotations)
    excluded_by_series = group_by_series(index.excluded)
    at_annotation = settings.malignancy_at == "annotation" and classify_at is not None
    notes: list[str] = []
    stale: dict[str, int] = {}  # why cached files were not reused → how many
    if not index.has_malignancy:
        notes.append("the dataset has no malignancy labels: every nodule is counted in the Benign row")
    if settings.malignancy_at == "annotation" and classify_at is None:
        notes.append("the detector cannot classify at given points: malignancy scored from matched detections")
    attributes = read_attributes(index.root)
    report = progress or (lambda fraction, text: None)
    outcomes: list[SeriesOutcome] = []
    stage_rows: list[NoduleStage] = []
    mal_samples: list[np.ndarray] = []  # rows (diameter, label, score)
    any_malignancy = False
    submission = out_dir / "submission.csv"
    with atomic_open(submission) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SUBMISSION_HEADER)
        for i, uid in enumerate(uids):
            if cancelled is not None and cancelled():
                raise CancelledError()
            nodules = by_series.get(uid, [])
            record, cached, note = series_detections(
                index, uid, nodules, detector, out_dir, detector_id, at_annotation, classify_at,
                lambda f, text, i=i: report((i + min(max(f, 0.0), 1.0)) / len(uids), f"{i + 1}/{len(uids)} {text}"),
                cancelled,
            )
            if note:
                stale[note] = stale.get(note, 0) + 1
            outcome, kept, mal = _score_series(
                record, nodules, excluded_by_series.get(uid, []), settings, at_annotation, cached
            )
            n_xyz, n_diam, _ = annotation_arrays(nodules)
            listed = attributes_for(n_xyz, attributes[uid]) if uid in attributes else None
            threshold = record.seg_threshold if np.isfinite(record.seg_threshold) else 0.5
            stage_rows += nodule_stages(uid, n_xyz, n_diam, record.annotation_seg_max, threshold,
                                        record.center_xyz, record.p_nodule, listed)
            outcomes.append(outcome)
            any_malignancy |= bool(np.isfinite(record.p_malignant).any())
            mal_samples.append(mal)
            for row in kept:
                writer.writerow((uid,) + row)
            report((i + 1) / len(uids), f"{i + 1}/{len(uids)} done")
    notes += [f"{n} cached series file(s) {why}: recomputed" for why, n in stale.items()]
    froc = compute_froc([o.scan for o in outcomes], bootstrap_samples=settings.bootstrap_samples, seed=settings.seed)
    source = "annotation" if at_annotation else "match"
    malignancy = _malignancy(np.concatenate(mal_samples), source, any_malignancy, index.has_malignancy)
    return EvaluationResult(
        settings=settings,
        data_root=Path(index.root),
        out_dir=out_dir,
        series=tuple(outcomes),
        confusion=sum((o.confusion for o in outcomes), ConfusionTable()),
        froc=froc,
        malignancy=malignancy,
        has_malignancy_model=any_malignancy,
        submission_csv=submission,
        notes=tuple(notes),
        stages=summarize_stages(stage_rows, settings.nodule_threshold),
    )


def series_detections(
    index: LunaIndex,
    uid: str,
    nodules: Sequence[Annotation],
    detector: DetectorLike,
    out_dir: Path,
    detector_id: str,
    at_annotation: bool,
    classify_at: ClassifyAt | None,
    progress: Progress,
    cancelled: Cancelled | None,
) -> tuple[SeriesDetections, bool, str]:
    """The series' detections from the cache, or from a fresh run (then cached).

    Returns:
        ``(record, from_cache, note)``; ``note`` says why a cache file was not used.
    """
    ann_xyz, ann_diam, _ = annotation_arrays(nodules)
    record, note = load_series(out_dir, uid, detector_id, ann_xyz, at_annotation)
    if record is not None:
        progress(1.0, f"{uid[-16:]} (cached)")
        return record, True, ""
    progress(0.0, f"{uid[-16:]} loading")
    ct = index.load(uid)
    start = time.perf_counter()
    result = detector.detect(ct, progress=lambda f, text: progress(0.95 * f, text), cancelled=cancelled)
    ann_p = None
    if at_annotation and classify_at is not None:
        progress(0.95, "malignancy at the annotations")
        ann_p = np.asarray(classify_at(ct, ann_xyz), dtype=np.float64).reshape(-1) if len(nodules) else np.zeros(0)
    seconds = time.perf_counter() - start
    levels = getattr(result, "seg_probability", None)  # the stage losses need it; a stand-in detector may lack it
    seg_max = None if levels is None else max_probability_within(levels, ct.geometry, ann_xyz, ann_diam)
    grouping = getattr(result, "grouping", None)
    record = SeriesDetections.from_candidates(
        uid, detector_id, result.candidates, ann_xyz, ann_p, seconds,
        annotation_seg_max=seg_max, seg_threshold=getattr(grouping, "seg_threshold", float("nan")),
    )
    save_series(out_dir, record)
    return record, False, note


def _score_series(
    record: SeriesDetections,
    nodules: Sequence[Annotation],
    excluded: Sequence[Annotation],
    settings: EvaluationSettings,
    at_annotation: bool,
    cached: bool,
) -> tuple[SeriesOutcome, list[tuple[str, str, str, str]], np.ndarray]:
    """Score one series.

    Returns:
        ``(outcome, submission rows (coordX, coordY, coordZ, probability) as text,
        malignancy samples (K, 3) float64 of (diameter_mm, label 0/1, model score
        or NaN) for the nodules with a malignancy label)``.
    """
    n_xyz, n_diam, n_mal = annotation_arrays(nodules)
    x_xyz, x_diam, _ = annotation_arrays(excluded)
    counts = confusion_counts(
        n_xyz, n_diam, n_mal, record.center_xyz, record.p_nodule, record.p_malignant,
        settings.nodule_threshold, settings.malignancy_threshold,
    )
    scan = score_scan(record.series_uid, n_xyz, n_diam, x_xyz, x_diam, record.center_xyz, record.p_nodule,
                      settings.max_marks)
    keep = kept_marks_mask(record.p_nodule, settings.max_marks)
    # repr() is the shortest text that reads back as the same float: no new ties, no moved marks
    rows = [
        (repr(float(x)), repr(float(y)), repr(float(z)), repr(float(p)))
        for (x, y, z), p in zip(record.center_xyz[keep], record.p_nodule[keep])
    ]
    if at_annotation:
        score = record.annotation_p_malignant
    else:
        score = matched_malignancy(n_xyz, n_diam, record.center_xyz, record.p_nodule, record.p_malignant)
    labelled = np.array([a.is_malignant is not None for a in nodules], dtype=bool)
    samples = np.column_stack([n_diam, n_mal.astype(np.float64), np.asarray(score, dtype=np.float64)])[labelled]
    outcome = SeriesOutcome(
        series_uid=record.series_uid,
        confusion=ConfusionTable.from_array(counts),
        scan=scan,
        n_candidates=record.n_candidates,
        seconds=record.seconds,
        cached=cached,
    )
    return outcome, rows, samples.reshape(-1, 3)


def matched_malignancy(
    nodule_xyz: np.ndarray,
    nodule_diameter_mm: np.ndarray,
    det_xyz: np.ndarray,
    det_p_nodule: np.ndarray,
    det_p_malignant: np.ndarray,
) -> np.ndarray:
    """Each nodule's ``p_malignant`` from its most nodule-like matching detection (book rule).

    Args:
        nodule_xyz: ``(T, 3)`` nodule centres, LPS mm.
        nodule_diameter_mm: ``(T,)`` diameters, mm.
        det_xyz: ``(D, 3)`` detection centres, LPS mm.
        det_p_nodule: ``(D,)`` nodule probabilities.
        det_p_malignant: ``(D,)`` malignancy probabilities.

    Returns:
        float64 ``(T,)``; NaN for nodules no detection matches.
    """
    match = book_match_matrix(nodule_xyz, nodule_diameter_mm, det_xyz)
    score = np.full(match.shape[0], np.nan)
    hit = match.any(axis=1)
    if hit.any():
        best = np.argmax(np.where(match[hit], np.asarray(det_p_nodule)[None, :], -np.inf), axis=1)
        score[hit] = np.asarray(det_p_malignant, dtype=np.float64)[best]
    return score


def _malignancy(samples: np.ndarray, source: str, has_model: bool, has_labels: bool) -> MalignancyResult:
    """Model ROC and diameter baselines from ``(K, 3)`` rows (diameter_mm, label, score)."""
    samples = samples.reshape(-1, 3)
    diameter, label, score = samples[:, 0], samples[:, 1] > 0.5, samples[:, 2]
    baseline_all = diameter_baseline_roc(diameter, label)
    note = ""
    if not has_labels:
        note = "the dataset has no malignancy labels (annotations_with_malignancy.csv)"
    elif not has_model:
        note = "the detector produced no malignancy probabilities"
    if note:
        return MalignancyResult("none", None, baseline_all, baseline_all, int(label.size), 0, note)
    scored = np.isfinite(score)
    model = roc_curve(label[scored], score[scored])
    baseline = diameter_baseline_roc(diameter[scored], label[scored])
    if not model.defined:
        note = "malignancy AUC needs both benign and malignant nodules among the scored ones"
    elif not scored.all():
        note = f"{int((~scored).sum())} nodule(s) had no matching detection and are left out of the model's ROC"
    return MalignancyResult(source, model, baseline, baseline_all, int(label.size), int(scored.sum()), note)
