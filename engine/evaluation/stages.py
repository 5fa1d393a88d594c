"""Where nodules are lost: segmentation, grouping or classification (issue 14), and sensitivity by group.

For each annotated nodule ``evaluate`` records whether the segmentation
flagged it (any voxel with ``p > seg_threshold`` within its radius: the
maximum probability there is kept in the per-series cache), whether a
candidate lies within its radius (``distance < diameter / 2``, LUNA16's hit
rule, before any probability threshold or mark cap), the best ``p_nodule``
among those candidates and that candidate's rank among the scan's candidates
(1 = the most probable). Summed over a set, they give:

* segmentation recall = flagged / nodules;
* grouping recall = flagged nodules with a candidate / flagged nodules;
* classification recall = nodules with a candidate at ``p ≥ nodule_threshold`` / nodules with a candidate;

and the sensitivity (a candidate at ``p ≥ nodule_threshold`` within the
radius) by size band and, when the dataset has ``annotations_attributes.csv``
(written by ``demo-data``), by nodule kind and location.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engine.errors import DatasetError
from engine.geometry import Geometry, xyz_to_irc_continuous

ATTRIBUTES_NAME = "annotations_attributes.csv"
#: Size bands (mm): label → ``[low, high)``.
SIZE_BANDS = {"<3 mm": (0.0, 3.0), "3-5 mm": (3.0, 5.0), "5-8 mm": (5.0, 8.0), "8-15 mm": (8.0, 15.0),
              ">15 mm": (15.0, np.inf)}
KINDS = ("solid", "part-solid", "ground-glass")
LOCATIONS = ("free", "juxtapleural", "juxtavascular")
#: Attributes are matched to annotations by series and centre within this distance, mm.
_MATCH_MM = 0.01


@dataclass(frozen=True)
class NoduleStage:
    """What happened to one annotated nodule.

    Args:
        series_uid: Its series.
        diameter_mm: Its diameter.
        seg_max: Highest segmentation probability within its radius (NaN: not recorded).
        flagged: ``seg_max > seg_threshold`` (None when ``seg_max`` is unknown).
        has_candidate: A candidate lies within its radius.
        best_p: Highest ``p_nodule`` of those candidates (NaN without one).
        rank: 1-based rank of that candidate among the scan's candidates by ``p_nodule`` (0 without one).
        kind: ``solid``, ``part-solid``, ``ground-glass`` or ``""`` (unknown).
        location: ``free``, ``juxtapleural``, ``juxtavascular`` or ``""`` (unknown).
    """

    series_uid: str
    diameter_mm: float
    seg_max: float
    flagged: bool | None
    has_candidate: bool
    best_p: float
    rank: int
    kind: str = ""
    location: str = ""


def max_probability_within(
    levels: np.ndarray, geometry: Geometry, centers_xyz: np.ndarray, diameters_mm: np.ndarray
) -> np.ndarray:
    """Highest segmentation probability within each nodule's radius.

    Args:
        levels: ``uint8 (I, R, C)`` probability levels ``round(255·p)``.
        geometry: The CT's geometry.
        centers_xyz: ``(T, 3)`` nodule centres, LPS mm.
        diameters_mm: ``(T,)`` diameters, mm.

    Returns:
        float64 ``(T,)`` in [0, 1]; the voxel nearest the centre always counts,
        so a nodule smaller than a voxel is judged by that voxel; 0 outside the volume.
    """
    centers = np.asarray(centers_xyz, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(centers.shape[0])
    if not centers.shape[0]:
        return out
    spacing = np.asarray(geometry.spacing_irc, dtype=np.float64)
    shape = np.asarray(levels.shape)
    for t, (irc, diameter) in enumerate(zip(xyz_to_irc_continuous(geometry, centers), diameters_mm)):
        radius = 0.5 * float(diameter)
        lo = np.maximum(np.floor(irc - radius / spacing).astype(int), 0)
        hi = np.minimum(np.ceil(irc + radius / spacing).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        grid = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        offset_mm = np.stack([(g - c) * s for g, c, s in zip(grid, irc, spacing)], axis=-1)
        inside = np.linalg.norm(offset_mm, axis=-1) < radius
        nearest = tuple(np.clip(np.round(irc).astype(int), lo, hi - 1) - lo)
        inside[nearest] = True
        out[t] = float(levels[tuple(slice(a, b) for a, b in zip(lo, hi))][inside].max()) / 255.0
    return out


def nodule_stages(
    series_uid: str,
    nodule_xyz: np.ndarray,
    nodule_diameter_mm: np.ndarray,
    seg_max: np.ndarray,
    seg_threshold: float,
    candidate_xyz: np.ndarray,
    candidate_p: np.ndarray,
    attributes: Sequence[tuple[str, str]] | None = None,
) -> list[NoduleStage]:
    """The stages of each nodule of one scan.

    Args:
        series_uid: The scan.
        nodule_xyz: ``(T, 3)`` centres, LPS mm.
        nodule_diameter_mm: ``(T,)`` diameters, mm.
        seg_max: ``(T,)`` highest segmentation probability within each radius (NaN: unknown).
        seg_threshold: The detector's segmentation threshold.
        candidate_xyz: ``(N, 3)`` every candidate's centre, LPS mm.
        candidate_p: ``(N,)`` their ``p_nodule``.
        attributes: ``(kind, location)`` per nodule, or None.

    Returns:
        One :class:`NoduleStage` per nodule, in order.
    """
    n_xyz = np.asarray(nodule_xyz, dtype=np.float64).reshape(-1, 3)
    diam = np.asarray(nodule_diameter_mm, dtype=np.float64).reshape(-1)
    c_xyz = np.asarray(candidate_xyz, dtype=np.float64).reshape(-1, 3)
    c_p = np.asarray(candidate_p, dtype=np.float64).reshape(-1)
    near = np.linalg.norm(n_xyz[:, None, :] - c_xyz[None, :, :], axis=2) < 0.5 * diam[:, None]
    rows = []
    for t in range(n_xyz.shape[0]):
        seg = float(seg_max[t]) if t < len(seg_max) else float("nan")
        hits = c_p[near[t]]
        best = float(np.nanmax(hits)) if hits.size and np.isfinite(hits).any() else float("nan")
        rank = int(np.count_nonzero(c_p > best)) + 1 if np.isfinite(best) else 0
        kind, location = attributes[t] if attributes is not None else ("", "")
        rows.append(NoduleStage(series_uid, float(diam[t]), seg, None if not np.isfinite(seg) else seg > seg_threshold,
                                bool(hits.size), best, rank, kind, location))
    return rows


@dataclass(frozen=True)
class GroupCounts:
    """Counts of one group of nodules (all, a size band, a kind, a location).

    Args:
        n: Nodules.
        flagged: Flagged by the segmentation (of those whose probability was recorded).
        recorded: Nodules whose segmentation probability was recorded.
        with_candidate: With a candidate within the radius.
        detected: With a candidate at ``p ≥ nodule_threshold`` within the radius.
    """

    n: int
    flagged: int
    recorded: int
    with_candidate: int
    detected: int

    @property
    def sensitivity(self) -> float:
        """``detected / n`` (NaN for an empty group)."""
        return self.detected / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and sensitivity."""
        sens = self.sensitivity
        return {"n": self.n, "flagged": self.flagged, "recorded": self.recorded, "with_candidate": self.with_candidate,
                "detected": self.detected, "sensitivity": sens if np.isfinite(sens) else None}


def _counts(rows: Sequence[NoduleStage], threshold: float) -> GroupCounts:
    return GroupCounts(
        n=len(rows),
        flagged=sum(r.flagged is True for r in rows),
        recorded=sum(r.flagged is not None for r in rows),
        with_candidate=sum(r.has_candidate for r in rows),
        detected=sum(r.has_candidate and r.best_p >= threshold for r in rows),
    )


@dataclass(frozen=True)
class StageSummary:
    """The per-stage losses and the grouped sensitivities of a set.

    Args:
        nodule_threshold: ``p_nodule`` threshold of "detected".
        total: Counts over all nodules.
        flagged_with_candidate: Flagged nodules that got a candidate.
        by_size, by_kind, by_location: Counts per group (groups with no nodules left out;
            kind and location only when the dataset lists them).
        nodules: Every nodule's stages, in evaluation order.
    """

    nodule_threshold: float
    total: GroupCounts
    flagged_with_candidate: int
    by_size: Mapping[str, GroupCounts]
    by_kind: Mapping[str, GroupCounts]
    by_location: Mapping[str, GroupCounts]
    nodules: tuple[NoduleStage, ...]

    @property
    def segmentation_recall(self) -> float:
        """Flagged / nodules whose segmentation probability was recorded."""
        return self.total.flagged / self.total.recorded if self.total.recorded else float("nan")

    @property
    def grouping_recall(self) -> float:
        """Flagged nodules with a candidate / flagged nodules."""
        return self.flagged_with_candidate / self.total.flagged if self.total.flagged else float("nan")

    @property
    def classification_recall(self) -> float:
        """Nodules with a candidate at ``p ≥ threshold`` / nodules with a candidate."""
        t = self.total
        return t.detected / t.with_candidate if t.with_candidate else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with every nodule's row (NaN as ``null``)."""

        def num(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "nodule_threshold": self.nodule_threshold,
            "segmentation_recall": num(self.segmentation_recall),
            "grouping_recall": num(self.grouping_recall),
            "classification_recall": num(self.classification_recall),
            "total": self.total.to_dict(),
            "flagged_with_candidate": self.flagged_with_candidate,
            "by_size": {k: v.to_dict() for k, v in self.by_size.items()},
            "by_kind": {k: v.to_dict() for k, v in self.by_kind.items()},
            "by_location": {k: v.to_dict() for k, v in self.by_location.items()},
            "nodules": [
                {"series_uid": r.series_uid, "diameter_mm": r.diameter_mm, "seg_max": num(r.seg_max),
                 "flagged": r.flagged, "has_candidate": r.has_candidate, "best_p": num(r.best_p), "rank": r.rank,
                 "kind": r.kind, "location": r.location}
                for r in self.nodules
            ],
        }


def summarize_stages(rows: Sequence[NoduleStage], nodule_threshold: float = 0.5) -> StageSummary:
    """Sum the nodules' stages (see the module docstring)."""
    rows = tuple(rows)
    by_size = {}
    for label, (low, high) in SIZE_BANDS.items():
        band = [r for r in rows if low <= r.diameter_mm < high]
        if band:
            by_size[label] = _counts(band, nodule_threshold)
    by_kind = {k: _counts([r for r in rows if r.kind == k], nodule_threshold) for k in KINDS if any(r.kind == k for r in rows)}
    by_location = {
        k: _counts([r for r in rows if r.location == k], nodule_threshold) for k in LOCATIONS if any(r.location == k for r in rows)
    }
    return StageSummary(
        nodule_threshold=nodule_threshold,
        total=_counts(rows, nodule_threshold),
        flagged_with_candidate=sum(r.flagged is True and r.has_candidate for r in rows),
        by_size=by_size,
        by_kind=by_kind,
        by_location=by_location,
        nodules=rows,
    )


def read_attributes(root: str | Path) -> dict[str, list[tuple[np.ndarray, str, str]]]:
    """``annotations_attributes.csv`` of a dataset by series: ``[(centre xyz, kind, location), ...]``; {} without it.

    Raises:
        DatasetError: the file exists but cannot be read.
    """
    path = Path(root) / ATTRIBUTES_NAME
    if not path.is_file():
        return {}
    out: dict[str, list[tuple[np.ndarray, str, str]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                xyz = np.array([float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])])
                out.setdefault(row["seriesuid"], []).append((xyz, row["kind"], row["location"]))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"cannot read the nodule attributes ({type(exc).__name__}: {exc})", path) from None
    return out


def attributes_for(nodule_xyz: np.ndarray, listed: Sequence[tuple[np.ndarray, str, str]]) -> list[tuple[str, str]]:
    """``(kind, location)`` of each nodule, from the listed attributes of its series (``("", "")`` when not listed)."""
    out = []
    for xyz in np.asarray(nodule_xyz, dtype=np.float64).reshape(-1, 3):
        match = [(k, loc) for c, k, loc in listed if np.linalg.norm(c - xyz) < _MATCH_MM]
        out.append(match[0] if match else ("", ""))
    return out
