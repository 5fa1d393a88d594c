"""Matching detections to annotated findings: the book's rule and the LUNA16 rule.

Both rules compare every truth point with every detection at once through a
``(T, D)`` distance matrix (T truths, D detections), in LPS millimetres.

* Book rule (SPEC §5, the book's confusion table): a detection matches a true
  nodule when ``‖truth − det‖ / truth_diameter < 0.7``.
* LUNA16 rule (SPEC §5, the official FROC script): a mark hits a finding when
  ``‖truth − det‖ < diameter / 2``. Excluded findings may carry diameter -1;
  the official script then uses 10 mm, and so do we.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The book's matching threshold on distance / diameter.
BOOK_MATCH_RATIO = 0.7
#: Diameter the official LUNA16 script gives a finding whose diameter is negative.
LUNA_MISSING_DIAMETER_MM = 10.0


def as_points(xyz: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Coerce points to a float64 ``(N, 3)`` array (``N`` may be 0).

    Args:
        xyz: ``(N, 3)`` array-like of (x, y, z) LPS mm, or an empty sequence.

    Returns:
        A new float64 array of shape ``(N, 3)``.

    Raises:
        ValueError: the input is not ``N`` points of 3 coordinates.
    """
    points = np.asarray(xyz, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected (N, 3) points, got shape {points.shape}")
    return points


def distance_matrix(truth_xyz: np.ndarray, det_xyz: np.ndarray) -> np.ndarray:
    """Euclidean distances between every truth point and every detection.

    Args:
        truth_xyz: ``(T, 3)`` points, LPS mm.
        det_xyz: ``(D, 3)`` points, LPS mm.

    Returns:
        float64 ``(T, D)`` distances in mm.
    """
    truth = as_points(truth_xyz)
    det = as_points(det_xyz)
    return np.linalg.norm(truth[:, None, :] - det[None, :, :], axis=-1)


def book_match_matrix(
    truth_xyz: np.ndarray,
    truth_diameter_mm: np.ndarray,
    det_xyz: np.ndarray,
    ratio: float = BOOK_MATCH_RATIO,
) -> np.ndarray:
    """Which detections match which nodules under the book's rule.

    Args:
        truth_xyz: ``(T, 3)`` nodule centres, LPS mm.
        truth_diameter_mm: ``(T,)`` nodule diameters in mm; a nodule with a
            diameter ≤ 0 matches nothing (its relative distance is undefined).
        det_xyz: ``(D, 3)`` detection centres, LPS mm.
        ratio: Match when distance / diameter is strictly below this.

    Returns:
        bool ``(T, D)``: ``[t, d]`` is True when detection ``d`` matches nodule ``t``.
    """
    dist = distance_matrix(truth_xyz, det_xyz)
    diameter = np.asarray(truth_diameter_mm, dtype=np.float64).reshape(-1)
    if diameter.shape[0] != dist.shape[0]:
        raise ValueError(f"{dist.shape[0]} truth points but {diameter.shape[0]} diameters")
    valid = diameter > 0
    # distance < ratio * diameter is the division-free form of distance / diameter < ratio
    return (dist < ratio * diameter[:, None]) & valid[:, None]


def luna_hit_matrix(
    truth_xyz: np.ndarray,
    truth_diameter_mm: np.ndarray,
    det_xyz: np.ndarray,
    missing_diameter_mm: float = LUNA_MISSING_DIAMETER_MM,
) -> np.ndarray:
    """Which marks hit which findings under the LUNA16 rule (distance < radius).

    Args:
        truth_xyz: ``(T, 3)`` finding centres, LPS mm.
        truth_diameter_mm: ``(T,)`` diameters in mm; negative values (excluded
            findings without a size) are replaced by ``missing_diameter_mm``.
        det_xyz: ``(D, 3)`` mark positions, LPS mm.
        missing_diameter_mm: The diameter assumed for negative diameters.

    Returns:
        bool ``(T, D)``: ``[t, d]`` is True when mark ``d`` lies strictly inside
        the sphere of finding ``t``.
    """
    dist = distance_matrix(truth_xyz, det_xyz)
    diameter = np.asarray(truth_diameter_mm, dtype=np.float64).reshape(-1)
    if diameter.shape[0] != dist.shape[0]:
        raise ValueError(f"{dist.shape[0]} truth points but {diameter.shape[0]} diameters")
    diameter = np.where(diameter < 0, missing_diameter_mm, diameter)
    return dist < diameter[:, None] / 2.0
