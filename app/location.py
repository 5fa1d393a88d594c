"""Where a finding lies in the lungs: right or left, upper, middle or lower third.

The thirds divide the height of the lungs (not the lobes: a CAD without a lobe
segmentation cannot name lobes). The lungs' extent comes from the detection
when it searched for them (:attr:`DetectionResult.roi_irc`, the box that was
segmented: the lung slices and a window around the lungs), otherwise from the
CT itself: the lung-like voxels (-975 to -400 HU, as the detector's lung
search) inside the body's box, on a decimated stack so it stays cheap.

No Qt; used by the findings table, the review and the report.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from engine.detection.result import DetectionResult
from engine.geometry import Geometry, irc_to_xyz
from engine.io.volume import CtVolume

#: HU range of aerated and denser lung (the detector's lung search uses the same).
LUNG_HU = (-975.0, -400.0)
#: HU above which a voxel is body (skin, muscle, bone).
BODY_HU = -400.0
#: In-plane decimation of the CT when the extent is read from the image.
STEP = 4
#: Share of a slice's body box that must be lung-like for the slice to count as lung.
MIN_LUNG_FRACTION = 0.02
#: The thirds' names, from the top.
THIRDS = ("upper", "middle", "lower")


@dataclass(frozen=True)
class LungExtent:
    """The lungs' box in patient coordinates.

    Args:
        x_mm: ``(lo, hi)`` LPS x (towards patient left), mm.
        z_mm: ``(lo, hi)`` LPS z (towards the head), mm.
        source: ``"detection"`` or ``"image"``: where the extent came from.
    """

    x_mm: tuple[float, float]
    z_mm: tuple[float, float]
    source: str = "image"

    @property
    def midline_x(self) -> float:
        """LPS x of the middle between the lungs, mm."""
        return 0.5 * (self.x_mm[0] + self.x_mm[1])

    def side(self, xyz: tuple[float, float, float]) -> str:
        """``"R"`` or ``"L"`` (patient right has smaller LPS x)."""
        return "L" if float(xyz[0]) >= self.midline_x else "R"

    def third(self, xyz: tuple[float, float, float]) -> str:
        """``"upper"``, ``"middle"`` or ``"lower"`` third of the lungs' height (clipped at the ends)."""
        lo, hi = self.z_mm
        if hi <= lo:
            return THIRDS[1]
        fraction = (hi - float(xyz[2])) / (hi - lo)  # 0 at the apex, 1 at the base
        return THIRDS[int(np.clip(np.floor(fraction * 3.0), 0, 2))]

    def describe(self, xyz: tuple[float, float, float]) -> str:
        """Short words for a table cell, e.g. ``"R upper"``."""
        return f"{self.side(xyz)} {self.third(xyz)}"

    def long_words(self, xyz: tuple[float, float, float]) -> str:
        """Words for a report, e.g. ``"right lung, upper third"``."""
        side = "left" if self.side(xyz) == "L" else "right"
        return f"{side} lung, {self.third(xyz)} third"


def box_extent(geometry: Geometry, lo_irc: tuple[int, int, int], hi_irc: tuple[int, int, int], source: str) -> LungExtent:
    """The LPS x and z range of a voxel box (``hi`` exclusive), over its eight corners."""
    corners = np.array(
        [[float(v) for v in corner] for corner in itertools.product(*[(lo, hi - 1) for lo, hi in zip(lo_irc, hi_irc)])]
    )
    xyz = np.asarray(irc_to_xyz(geometry, corners), dtype=np.float64).reshape(-1, 3)
    return LungExtent((float(xyz[:, 0].min()), float(xyz[:, 0].max())), (float(xyz[:, 2].min()), float(xyz[:, 2].max())), source)


def image_extent(ct: CtVolume) -> LungExtent:
    """The lungs' extent read from the CT: lung-like voxels inside the body's box.

    Falls back to the body's box (or the whole volume) when no slice holds
    enough lung-like voxels.
    """
    hu = ct.hu[:, ::STEP, ::STEP]
    shape = ct.shape
    body = hu > BODY_HU
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if rows.size < 2 or cols.size < 2:
        return box_extent(ct.geometry, (0, 0, 0), shape, "image")
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    inner = hu[:, r0:r1, c0:c1]
    lungish = (inner > LUNG_HU[0]) & (inner < LUNG_HU[1])
    per_slice = lungish.reshape(len(inner), -1).mean(axis=1)
    slices = np.flatnonzero(per_slice >= MIN_LUNG_FRACTION)
    if slices.size == 0:
        return box_extent(ct.geometry, (0, r0 * STEP, c0 * STEP), (shape[0], r1 * STEP, c1 * STEP), "image")
    lung_cols = np.flatnonzero(lungish[slices].any(axis=(0, 1)))
    lo = (int(slices[0]), int(r0 * STEP), int((c0 + lung_cols[0]) * STEP))
    hi = (int(slices[-1] + 1), int(r1 * STEP), int(min(shape[2], (c0 + lung_cols[-1] + 1) * STEP)))
    return box_extent(ct.geometry, lo, hi, "image")


def lung_extent(ct: CtVolume, result: DetectionResult | None = None) -> LungExtent:
    """The lungs' extent: the detection's lung box when it found one, else read from the image.

    Args:
        ct: The open CT.
        result: Its detection result, if any.
    """
    if result is not None:
        lo, hi = result.roi_irc
        whole = tuple(lo) == (0, 0, 0) and tuple(hi) == tuple(ct.shape)
        if all(h > low for low, h in zip(lo, hi)) and not whole:
            return box_extent(ct.geometry, tuple(lo), tuple(hi), "detection")
    return image_extent(ct)
