"""Per-series detection results cached by ``evaluate``, so a rerun resumes.

One JSON file per series, ``<out>/series/<seriesuid>.json``, written atomically
(:mod:`engine.files`), so an interrupted
run never leaves a half-written file. Candidates are stored unfiltered and as
columns; thresholds are applied when scoring, so rescoring at other thresholds
needs no new detection.

A file is reused only when its format version, the detector's fingerprint and
the series' annotation centres all match the current run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from engine.files import write_text_atomic

#: Bump when the file layout changes; older files are then recomputed.
CACHE_VERSION = 2  # 2: segmentation probability at the annotations (annotation_seg_max, seg_threshold)
SERIES_DIR = "series"


@dataclass(frozen=True, eq=False)
class SeriesDetections:
    """Everything ``evaluate`` keeps of one series' detection run.

    Args:
        series_uid: The series.
        detector_id: Fingerprint of the models that produced the candidates.
        center_xyz: ``(N, 3)`` float64 candidate centres, LPS mm.
        center_irc: ``(N, 3)`` float64 candidate centres, voxel (index, row, col).
        p_nodule: ``(N,)`` float64 nodule probabilities.
        p_malignant: ``(N,)`` float64 malignancy probabilities (NaN = not computed).
        diameter_mm: ``(N,)`` float64 equivalent-sphere diameters, mm.
        voxel_count: ``(N,)`` int64 voxels in each candidate's component.
        annotation_xyz: ``(T, 3)`` float64 centres of the series' annotated
            nodules when it was evaluated, LPS mm.
        annotation_p_malignant: ``(T,)`` float64 malignancy probability of a
            crop classified at each annotation centre (NaN when not classified).
        annotations_classified: Whether ``annotation_p_malignant`` was computed.
        seconds: Wall time of the detection run, s.
        annotation_seg_max: ``(T,)`` float64 highest segmentation probability within
            each annotated nodule's radius (NaN: the detector gave no probability volume).
        seg_threshold: The detector's segmentation threshold (NaN: unknown).
    """

    series_uid: str
    detector_id: str
    center_xyz: np.ndarray = field(repr=False)
    center_irc: np.ndarray = field(repr=False)
    p_nodule: np.ndarray = field(repr=False)
    p_malignant: np.ndarray = field(repr=False)
    diameter_mm: np.ndarray = field(repr=False)
    voxel_count: np.ndarray = field(repr=False)
    annotation_xyz: np.ndarray = field(repr=False)
    annotation_p_malignant: np.ndarray = field(repr=False)
    annotations_classified: bool = False
    seconds: float = 0.0
    annotation_seg_max: np.ndarray | None = field(default=None, repr=False)
    seg_threshold: float = float("nan")

    def __post_init__(self) -> None:
        if self.annotation_seg_max is None:
            object.__setattr__(self, "annotation_seg_max", np.full(self.annotation_xyz.shape[0], np.nan))

    @property
    def n_candidates(self) -> int:
        """Candidates found in the series."""
        return int(self.p_nodule.shape[0])

    @classmethod
    def from_candidates(
        cls,
        series_uid: str,
        detector_id: str,
        candidates: Iterable[Any],
        annotation_xyz: np.ndarray,
        annotation_p_malignant: np.ndarray | None,
        seconds: float,
        annotation_seg_max: np.ndarray | None = None,
        seg_threshold: float = float("nan"),
    ) -> "SeriesDetections":
        """Build from engine candidates (objects with ``center_xyz``, ``center_irc``,
        ``p_nodule``, ``p_malignant``, ``diameter_mm``, ``voxel_count``; the last
        four may be missing or ``None``); ``annotation_seg_max`` None: not recorded."""
        rows = list(candidates)
        n = len(rows)

        def column(name: str, default: float) -> np.ndarray:
            values = [getattr(c, name, None) for c in rows]
            return np.array([default if v is None else float(v) for v in values], dtype=np.float64)

        irc = [getattr(c, "center_irc", None) for c in rows]
        ann = np.asarray(annotation_xyz, dtype=np.float64).reshape(-1, 3)
        classified = annotation_p_malignant is not None
        ann_p = (
            np.asarray(annotation_p_malignant, dtype=np.float64).reshape(-1)
            if classified
            else np.full(ann.shape[0], np.nan)
        )
        return cls(
            series_uid=series_uid,
            detector_id=detector_id,
            center_xyz=np.array([c.center_xyz for c in rows], dtype=np.float64).reshape(n, 3),
            center_irc=np.array([(np.nan,) * 3 if v is None else v for v in irc], dtype=np.float64).reshape(n, 3),
            p_nodule=column("p_nodule", np.nan),
            p_malignant=column("p_malignant", np.nan),
            diameter_mm=column("diameter_mm", 0.0),
            voxel_count=column("voxel_count", 0.0).astype(np.int64),
            annotation_xyz=ann,
            annotation_p_malignant=ann_p,
            annotations_classified=classified,
            seconds=float(seconds),
            annotation_seg_max=(
                np.full(ann.shape[0], np.nan)
                if annotation_seg_max is None
                else np.asarray(annotation_seg_max, dtype=np.float64).reshape(-1)
            ),
            seg_threshold=float(seg_threshold),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as ``null``)."""

        def col(a: np.ndarray) -> list[Any]:
            return [None if isinstance(v, float) and not np.isfinite(v) else v for v in a.tolist()]

        def rows(a: np.ndarray) -> list[list[Any]]:
            return [col(np.asarray(r)) for r in a]

        return {
            "version": CACHE_VERSION,
            "series_uid": self.series_uid,
            "detector_id": self.detector_id,
            "seconds": self.seconds,
            "annotations_classified": self.annotations_classified,
            "annotation_xyz": rows(self.annotation_xyz),
            "annotation_p_malignant": col(self.annotation_p_malignant),
            "annotation_seg_max": col(self.annotation_seg_max),
            "seg_threshold": self.seg_threshold if np.isfinite(self.seg_threshold) else None,
            "candidates": {
                "center_xyz": rows(self.center_xyz),
                "center_irc": rows(self.center_irc),
                "p_nodule": col(self.p_nodule),
                "p_malignant": col(self.p_malignant),
                "diameter_mm": col(self.diameter_mm),
                "voxel_count": self.voxel_count.tolist(),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SeriesDetections":
        """Inverse of :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: the dict is not a cache record.
        """

        def col(values: list[Any]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)

        def rows(values: list[list[Any]]) -> np.ndarray:
            return np.array([[np.nan if x is None else x for x in r] for r in values], dtype=np.float64).reshape(-1, 3)

        cand = data["candidates"]
        record = cls(
            series_uid=str(data["series_uid"]),
            detector_id=str(data["detector_id"]),
            center_xyz=rows(cand["center_xyz"]),
            center_irc=rows(cand["center_irc"]),
            p_nodule=col(cand["p_nodule"]),
            p_malignant=col(cand["p_malignant"]),
            diameter_mm=col(cand["diameter_mm"]),
            voxel_count=np.asarray(cand["voxel_count"], dtype=np.int64).reshape(-1),
            annotation_xyz=rows(data["annotation_xyz"]),
            annotation_p_malignant=col(data["annotation_p_malignant"]),
            annotations_classified=bool(data["annotations_classified"]),
            seconds=float(data["seconds"]),
            annotation_seg_max=col(data["annotation_seg_max"]),
            seg_threshold=float("nan") if data["seg_threshold"] is None else float(data["seg_threshold"]),
        )
        n = record.p_nodule.shape[0]
        columns = (record.center_xyz, record.center_irc, record.p_malignant, record.diameter_mm, record.voxel_count)
        lengths = {a.shape[0] for a in columns}
        n_ann = record.annotation_xyz.shape[0]
        if lengths != {n} or {record.annotation_p_malignant.shape[0], record.annotation_seg_max.shape[0]} != {n_ann}:
            raise ValueError("columns of different lengths")
        return record


def series_path(out_dir: str | Path, series_uid: str) -> Path:
    """Where the cache file of a series lives."""
    return Path(out_dir) / SERIES_DIR / f"{series_uid}.json"


def save_series(out_dir: str | Path, record: SeriesDetections) -> Path:
    """Write a series' record atomically; returns the file."""
    path = series_path(out_dir, record.series_uid)
    write_text_atomic(path, json.dumps(record.to_json(), separators=(",", ":")))
    return path


def load_series(
    out_dir: str | Path,
    series_uid: str,
    detector_id: str,
    annotation_xyz: np.ndarray,
    need_annotation_scores: bool,
) -> tuple[SeriesDetections | None, str]:
    """The cached record of a series if it fits the current run.

    Args:
        out_dir: The evaluation folder.
        series_uid: The series.
        detector_id: The current detector's fingerprint.
        annotation_xyz: ``(T, 3)`` the series' current annotation centres, LPS mm.
        need_annotation_scores: Whether the run needs malignancy at the annotations.

    Returns:
        ``(record, "")`` when reusable, else ``(None, reason)``: why the file
        cannot be used, in a few words (empty when there is no file, or when it
        only lacks the malignancy scores at the annotations).
    """
    path = series_path(out_dir, series_uid)
    if not path.exists():
        return None, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION:
            return None, "written by another version"
        record = SeriesDetections.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if record.series_uid != series_uid:
        return None, "holding another series"
    if record.detector_id != detector_id:
        return None, "made by other models"
    current = np.asarray(annotation_xyz, dtype=np.float64).reshape(-1, 3)
    if current.shape != record.annotation_xyz.shape or not np.allclose(current, record.annotation_xyz):
        return None, "made with other annotations"
    if need_annotation_scores and not record.annotations_classified:
        return None, ""
    return record, ""
