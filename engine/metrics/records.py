"""The detection record the metrics consume, and conversions from the engine's types.

Truth comes as :class:`engine.luna.Annotation`. Detections (the LUNA16
challenge calls them *marks*) come as :class:`Detection`; anything with
``center_xyz``, ``p_nodule``, ``p_malignant`` and ``diameter_mm`` attributes
(such as ``engine.detection.Candidate``) converts with :func:`detections_from`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from engine.luna import Annotation


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected candidate in one series.

    Args:
        series_uid: The series it was found in.
        center_xyz: Centre in LPS mm (x, y, z).
        p_nodule: Probability that it is a nodule, 0..1 (the FROC mark probability).
        p_malignant: Probability that it is malignant, 0..1, or ``None`` when no
            malignancy model was run.
        diameter_mm: Equivalent-sphere diameter in mm (0 when unknown).
    """

    series_uid: str
    center_xyz: tuple[float, float, float]
    p_nodule: float
    p_malignant: float | None = None
    diameter_mm: float = 0.0


def detections_from(series_uid: str, candidates: Iterable[Any]) -> list[Detection]:
    """Convert engine candidates (``engine.detection.Candidate`` or alike) to detections.

    Args:
        series_uid: The series the candidates belong to.
        candidates: Objects with ``center_xyz``, ``p_nodule`` and optionally
            ``p_malignant`` and ``diameter_mm`` attributes.

    Returns:
        One :class:`Detection` per candidate, in the same order.
    """
    out = []
    for c in candidates:
        p_mal = getattr(c, "p_malignant", None)
        out.append(
            Detection(
                series_uid=series_uid,
                center_xyz=tuple(float(v) for v in c.center_xyz),  # type: ignore[arg-type]
                p_nodule=float(c.p_nodule),
                p_malignant=None if p_mal is None else float(p_mal),
                diameter_mm=float(getattr(c, "diameter_mm", 0.0) or 0.0),
            )
        )
    return out


def annotation_arrays(annotations: Sequence[Annotation]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres, diameters and malignancy labels of annotations as arrays.

    Returns:
        ``(xyz (T, 3) float64 LPS mm, diameter_mm (T,) float64, malignant (T,) bool)``;
        an unknown label (``is_malignant is None``) reads as not malignant.
    """
    xyz = np.array([a.center_xyz for a in annotations], dtype=np.float64).reshape(-1, 3)
    diameter = np.array([a.diameter_mm for a in annotations], dtype=np.float64)
    malignant = np.array([a.is_malignant is True for a in annotations], dtype=bool)
    return xyz, diameter, malignant


def detection_arrays(detections: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres and probabilities of detections as arrays.

    Returns:
        ``(xyz (D, 3) float64 LPS mm, p_nodule (D,) float64, p_malignant (D,) float64)``;
        a missing ``p_malignant`` is NaN.
    """
    xyz = np.array([d.center_xyz for d in detections], dtype=np.float64).reshape(-1, 3)
    p_nodule = np.array([d.p_nodule for d in detections], dtype=np.float64)
    p_mal = np.array([np.nan if d.p_malignant is None else d.p_malignant for d in detections], dtype=np.float64)
    return xyz, p_nodule, p_mal


def group_by_series(items: Iterable[Any]) -> dict[str, list[Any]]:
    """Group records with a ``series_uid`` attribute by series, keeping their order."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(item.series_uid, []).append(item)
    return groups
