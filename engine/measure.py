"""Lesion measurements from a finding's segmentation: axis diameters, volume, solid component.

What a lung-CAD reader expects next to each finding (Fleischner / Lung-RADS
style): the *long axis* (the longest chord, i.e. the maximum Feret diameter)
and the *short axis* (the longest chord perpendicular to it), both on the
axial slice through the finding's centre; the *volume* of the whole 3D
component; and for part-solid findings the long axis of the solid part
(the largest connected piece of the pixels at or above :data:`SOLID_HU`,
leaving out vessels that cross the finding; a piece under
:data:`SOLID_MIN_DIAMETER_MM` is noise, and the finding reads as ground-glass).

The segmentation of a finding is the thresholded probability volume of its
result (``level > threshold_level(seg_threshold)``) inside the candidate's
bounding box, restricted to the connected component at (or nearest to) its
centre. Pure numpy and scipy's labeller: no Qt, no torch.

Pixels are treated as rectangles of the voxel spacing, so a diameter covers
whole pixels (a single pixel measures one pixel across, not zero).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.detection.result import Candidate, DetectionResult, threshold_level
from engine.io.volume import CtVolume

#: HU from which a voxel counts as solid (the usual part-solid / ground-glass split).
SOLID_HU = -300.0
#: A finding is part-solid when its solid pixels cover more than nothing but less than this share of its area.
PART_SOLID_MAX_FRACTION = 0.5
#: A solid part narrower than this (equivalent diameter of its largest connected piece, mm) is not
#: measurable: scattered noise pixels or a vessel's wall above :data:`SOLID_HU` in a ground-glass nodule.
SOLID_MIN_DIAMETER_MM = 1.5
#: A dense piece that reaches a finding's outline and is at least this many times longer than wide is a
#: vessel crossing the finding, not its solid component.
VESSEL_ELONGATION = 2.0


@dataclass(frozen=True)
class LesionMeasurement:
    """Size of one finding, in mm and mm³.

    Args:
        long_axis_mm: Longest chord on the axial centre slice (max Feret diameter).
        short_axis_mm: Longest chord perpendicular to the long axis on that slice.
        volume_mm3: Voxels of the 3D component × voxel volume.
        solid_fraction: Share of the centre-slice area at or above :data:`SOLID_HU`.
        consistency: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        solid_axis_mm: Long axis of the solid part, for part-solid findings; else None.
        slice_index: The axial slice the diameters were measured on.
        from_mask: False when the segmentation held no voxel of the finding (the
            values then come from the candidate's own diameter and voxel count).
        long_axis_rc, short_axis_rc: The two chords' ends ``((r0, c0), (r1, c1))``
            in the volume's continuous (row, col) voxel coordinates on
            ``slice_index`` (None without a mask), to draw them.
    """

    long_axis_mm: float
    short_axis_mm: float
    volume_mm3: float
    solid_fraction: float
    consistency: str
    solid_axis_mm: float | None
    slice_index: int
    from_mask: bool = True
    long_axis_rc: tuple[tuple[float, float], tuple[float, float]] | None = None
    short_axis_rc: tuple[tuple[float, float], tuple[float, float]] | None = None

    def summary(self) -> str:
        """One line for a reader: ``"12.3 × 8.1 mm, 640 mm³, part-solid (solid 4.2 mm)"``."""
        text = f"{self.long_axis_mm:.1f} × {self.short_axis_mm:.1f} mm, {self.volume_mm3:.0f} mm³, {self.consistency}"
        if self.solid_axis_mm is not None:
            text += f" (solid {self.solid_axis_mm:.1f} mm)"
        return text


def _extreme_corners(mask: np.ndarray, spacing_rc: tuple[float, float]) -> np.ndarray:
    """Corners (mm) of the pixels at the ends of each row and column run: a superset of the hull's vertices."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros((0, 2))
    # leftmost and rightmost pixel of each row, topmost and bottommost of each column
    keep = np.zeros(rows.size, dtype=bool)
    for key, other in ((rows, cols), (cols, rows)):
        order = np.lexsort((other, key))
        k = key[order]
        first = np.r_[True, k[1:] != k[:-1]]
        last = np.r_[k[1:] != k[:-1], True]
        keep[order[first | last]] = True
    r, c = rows[keep].astype(np.float64), cols[keep].astype(np.float64)
    offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    corners = np.stack([r, c], axis=-1)[:, None, :] + offsets[None, :, :]
    corners = np.unique(corners.reshape(-1, 2), axis=0)
    return corners * np.asarray(spacing_rc, dtype=np.float64)


def _feret_ends(mask: np.ndarray, spacing_rc: tuple[float, float]) -> tuple[float, np.ndarray, np.ndarray]:
    """Length and the two ends (mm, row/col order) of the longest chord of a 2D mask."""
    corners = _extreme_corners(mask, spacing_rc)
    if len(corners) == 0:
        return 0.0, np.zeros(2), np.zeros(2)
    diff = corners[:, None, :] - corners[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return math.sqrt(float(d2[i, j])), corners[j], corners[i]


def _solid_core(solid: np.ndarray, section: np.ndarray, spacing_rc: tuple[float, float]) -> np.ndarray:
    """The largest 8-connected piece of ``solid`` that is not a vessel crossing the lesion.

    A vessel running through a ground-glass nodule is dense, reaches the
    lesion's outline and is long and thin; a solid core is compact (an eccentric
    one may touch the outline too). Pieces that touch the outline of ``section``
    and are at least :data:`VESSEL_ELONGATION` times longer than wide are left out.

    Returns:
        A 2D bool mask, all False when no piece is left.
    """
    labels, count = ndimage.label(solid, structure=np.ones((3, 3), dtype=bool))
    outline = section & ~ndimage.binary_erosion(section, structure=np.ones((3, 3), dtype=bool))
    best = np.zeros_like(solid, dtype=bool)
    for label in range(1, count + 1):
        piece = labels == label
        if piece.sum() <= best.sum():
            continue
        if (piece & outline).any():
            length, direction = max_feret(piece, spacing_rc)
            width = perpendicular_chord(piece, spacing_rc, direction)
            if width > 0 and length >= VESSEL_ELONGATION * width:
                continue
        best = piece
    return best


def max_feret(mask: np.ndarray, spacing_rc: tuple[float, float]) -> tuple[float, np.ndarray]:
    """The longest chord of a 2D mask (its maximum Feret diameter), in mm.

    Args:
        mask: 2D bool array (rows, cols).
        spacing_rc: Pixel size in mm along rows and columns.

    Returns:
        ``(length_mm, direction)``: the length and a unit vector ``(d_row, d_col)``
        in mm space along it (``(0, 0)`` for an empty mask).
    """
    length, start, end = _feret_ends(mask, spacing_rc)
    direction = (end - start) / length if length > 0 else np.zeros(2)
    return length, direction


def perpendicular_chord(mask: np.ndarray, spacing_rc: tuple[float, float], direction: np.ndarray) -> float:
    """The longest chord of a 2D mask perpendicular to ``direction``, in mm.

    Pixels are binned by their position along ``direction`` (bins one pixel
    wide); in each bin the chord runs from the lowest to the highest pixel
    across it, plus one pixel's width across.

    Args:
        mask: 2D bool array (rows, cols).
        spacing_rc: Pixel size in mm along rows and columns.
        direction: Unit vector ``(d_row, d_col)`` in mm space (the long axis).

    Returns:
        Chord length in mm (0 for an empty mask).
    """
    return _chord_ends(mask, spacing_rc, direction)[0]


def _chord_ends(
    mask: np.ndarray, spacing_rc: tuple[float, float], direction: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`perpendicular_chord`'s length and its two ends (mm, row/col order)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0.0, np.zeros(2), np.zeros(2)
    sr, sc = (float(s) for s in spacing_rc)
    points = np.stack([rows * sr, cols * sc], axis=-1)
    t_axis = np.asarray(direction, dtype=np.float64)
    if not np.any(t_axis):
        t_axis = np.array([0.0, 1.0])
    n_axis = np.array([-t_axis[1], t_axis[0]])
    t = points @ t_axis
    n = points @ n_axis
    width = min(sr, sc)
    bins = np.floor((t - t.min()) / width).astype(np.int64)
    hi = np.full(bins.max() + 1, -np.inf)
    lo = np.full(bins.max() + 1, np.inf)
    np.maximum.at(hi, bins, n)
    np.minimum.at(lo, bins, n)
    across = abs(n_axis[0]) * sr + abs(n_axis[1]) * sc  # one pixel's extent across the chord
    spans = np.where(np.isfinite(hi), hi - lo, -np.inf)
    b = int(np.argmax(spans))
    t_mid = t.min() + (b + 0.5) * width
    start = t_mid * t_axis + (lo[b] - 0.5 * across) * n_axis
    end = t_mid * t_axis + (hi[b] + 0.5 * across) * n_axis
    return float(spans[b] + across), start, end


def _component(mask: np.ndarray, centre: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The connected component (26-neighbour) of ``mask`` at ``centre``, or the one nearest to it."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return mask
    at = tuple(int(np.clip(np.floor(c + 0.5), 0, n - 1)) for c, n in zip(centre, mask.shape))
    label = int(labels[at])
    if label == 0:
        points = np.argwhere(labels > 0)
        distance = np.sum(((points - centre) * spacing) ** 2, axis=1)
        label = int(labels[tuple(points[int(np.argmin(distance))])])
    return labels == label


def measure_component(
    mask: np.ndarray, hu: np.ndarray, spacing_irc: tuple[float, float, float], centre_irc: tuple[float, float, float]
) -> LesionMeasurement:
    """Measure the component of a 3D mask at a centre point (everything in one crop).

    Args:
        mask: ``(index, row, col)`` bool segmentation of the crop.
        hu: HU values of the same crop (any numeric dtype).
        spacing_irc: Voxel size in mm along (index, row, col).
        centre_irc: The finding's centre in crop voxel coordinates.

    Returns:
        Its measurement; ``slice_index`` is relative to the crop.

    Raises:
        ValueError: ``mask`` and ``hu`` differ in shape, or the mask is empty.
    """
    if mask.shape != hu.shape or mask.ndim != 3:
        raise ValueError(f"mask {mask.shape} and HU {hu.shape} must be the same 3D shape")
    if not mask.any():
        raise ValueError("the segmentation holds no voxel of this finding")
    spacing = np.asarray(spacing_irc, dtype=np.float64)
    centre = np.asarray(centre_irc, dtype=np.float64)
    component = _component(mask, centre, spacing)
    layers = np.flatnonzero(component.any(axis=(1, 2)))
    s = int(np.clip(np.floor(centre[0] + 0.5), layers[0], layers[-1]))
    if not component[s].any():  # a component that skips the centre slice: take its nearest slice
        s = int(layers[np.argmin(np.abs(layers - centre[0]))])
    section = component[s]
    spacing_rc = (float(spacing[1]), float(spacing[2]))
    long_axis, long_start, long_end = _feret_ends(section, spacing_rc)
    direction = (long_end - long_start) / long_axis if long_axis > 0 else np.zeros(2)
    short_axis, short_start, short_end = _chord_ends(section, spacing_rc, direction)
    to_rc = np.asarray(spacing_rc, dtype=np.float64)

    def ends(a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
        return tuple(float(v) for v in a / to_rc), tuple(float(v) for v in b / to_rc)  # type: ignore[return-value]

    solid = section & (hu[s] >= SOLID_HU)
    fraction = float(solid.sum()) / float(section.sum())
    core = _solid_core(solid, section, spacing_rc)
    core_diameter = 2.0 * math.sqrt(float(core.sum()) * spacing_rc[0] * spacing_rc[1] / math.pi)
    if fraction >= PART_SOLID_MAX_FRACTION:
        consistency, solid_axis = "solid", None
    elif core_diameter < SOLID_MIN_DIAMETER_MM:
        consistency, solid_axis = "ground-glass", None
    else:  # the solid component is its largest connected piece, measured along its own long axis
        consistency, solid_axis = "part-solid", max_feret(core, spacing_rc)[0]
    volume = float(component.sum()) * float(np.prod(spacing))
    return LesionMeasurement(long_axis, short_axis, volume, fraction, consistency, solid_axis, s, True,
                             ends(long_start, long_end), ends(short_start, short_end))


def lesion_measurements(result: DetectionResult, ct: CtVolume, candidate: Candidate) -> LesionMeasurement:
    """Long/short axis, volume and solid component of one finding of a result.

    Args:
        result: The detection result (its probability volume and grouping threshold).
        ct: The CT it was detected on.
        candidate: One of ``result.candidates``.

    Returns:
        The measurement; ``slice_index`` is the volume's axial slice index.
        When the thresholded segmentation holds no voxel in the candidate's box
        (``from_mask`` False), both axes are the candidate's equivalent diameter
        and the volume is its voxel count × voxel volume.
    """
    (lo, hi) = candidate.bbox_irc
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    mask = result.seg_probability[box] > threshold_level(result.seg_threshold)
    centre = np.asarray(candidate.center_irc, dtype=np.float64) - np.asarray(lo, dtype=np.float64)
    spacing = ct.geometry.spacing_irc
    if mask.size == 0 or not mask.any():
        d = float(candidate.diameter_mm)
        volume = float(candidate.voxel_count) * float(np.prod(spacing))
        return LesionMeasurement(d, d, volume, 0.0, "unknown", None, candidate.slice_index, from_mask=False)
    measured = measure_component(mask, ct.hu[box], spacing, tuple(centre))
    offset = np.array([float(lo[1]), float(lo[2])])

    def shift(rc: tuple | None) -> tuple | None:
        return None if rc is None else tuple(tuple(float(v) for v in np.asarray(p) + offset) for p in rc)

    return dataclasses.replace(
        measured, slice_index=measured.slice_index + int(lo[0]),
        long_axis_rc=shift(measured.long_axis_rc), short_axis_rc=shift(measured.short_axis_rc),
    )
