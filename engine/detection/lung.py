"""Where to segment: the slices that hold lung and an in-plane window around the lungs.

Nodules lie in the lungs, so the detector runs the segmentation model only on
slices with lung and only inside a window around the lungs; elsewhere the
probability is 0. The test is cheap (a fraction of a second for a 512×512×300
CT) and errs towards segmenting more:

1. HU clipped to [-1000, 1000] (as the models see them) and averaged over
   4×4 in-plane blocks, which removes most noise (σ/4).
2. A block is *lung-like* when its mean lies in (-975, -400) HU: aerated lung
   (-950 to -500) and denser lung, but not air outside the body (-1000) and
   not soft tissue, fat or bone.
3. A 2D opening with a 3×3-block square removes the one- or two-block rims where
   air meets the body (their means fall in the lung range by partial volume).
4. A slice holds lung when at least ``min_area_mm2`` (1 cm²) stays; the slices
   from the first to the last such slice, widened by ``z_margin_mm`` (5 mm),
   are segmented.
5. The window is the box of the remaining lung blocks over those slices,
   widened by ``margin_px`` pixels (32, more than the U-Net's 22-pixel reach, so
   the model's output at every lung pixel is the same as on the whole slice),
   its start aligned to the U-Net's pooling grid (a multiple of 4).

If no slice holds lung (a phantom without lungs, a tiny test volume), every
slice is segmented in full and ``found`` is False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from engine.detection.runtime import tensor_view

LUNG_HU_RANGE = (-975.0, -400.0)
BLOCK = 4


@dataclass(frozen=True)
class LungRegion:
    """Slices and in-plane window to segment.

    Args:
        slices: int64 ``(K,)`` sorted slice indices to segment.
        rows: Row window ``[start, stop)``.
        cols: Column window ``[start, stop)``.
        found: Whether lung was found (False: everything is segmented).
    """

    slices: np.ndarray
    rows: slice
    cols: slice
    found: bool

    def box_irc(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``((i0, r0, c0), (i1, r1, c1))`` box of the segmented region, hi exclusive."""
        if self.slices.size == 0:
            return (0, 0, 0), (0, 0, 0)
        lo = (int(self.slices[0]), int(self.rows.start), int(self.cols.start))
        hi = (int(self.slices[-1]) + 1, int(self.rows.stop), int(self.cols.stop))
        return lo, hi

    def describe(self, shape: tuple[int, int, int]) -> str:
        """One line for logs: how much of the volume is segmented."""
        rows = self.rows.stop - self.rows.start
        cols = self.cols.stop - self.cols.start
        fraction = self.slices.size * rows * cols / max(1, shape[0] * shape[1] * shape[2])
        return (
            f"segmenting {self.slices.size}/{shape[0]} slices in a {rows}×{cols} window "
            f"({100 * fraction:.0f}% of the voxels)"
        )


def whole_volume(shape: tuple[int, int, int]) -> LungRegion:
    """The region covering every slice in full."""
    return LungRegion(np.arange(shape[0], dtype=np.int64), slice(0, shape[1]), slice(0, shape[2]), found=False)


def block_means(hu: np.ndarray, block: int = BLOCK, chunk: int = 32) -> np.ndarray:
    """Mean of ``clip(HU, -1000, 1000)`` over ``block × block`` in-plane tiles.

    Args:
        hu: int16 ``(I, R, C)``.
        block: Tile size in pixels.
        chunk: Slices converted to float at a time (bounds the temporary memory).

    Returns:
        float32 ``(I, ceil(R/block), ceil(C/block))``; partial edge tiles average
        their pixels only.
    """
    volume = tensor_view(hu)
    out = []
    for start in range(0, hu.shape[0], chunk):
        part = volume[start : start + chunk].to(torch.float32).clamp_(-1000.0, 1000.0)
        out.append(F.avg_pool2d(part[:, None], block, ceil_mode=True, count_include_pad=False)[:, 0])
    return torch.cat(out).numpy()


def find_lung_region(
    hu: np.ndarray,
    spacing_irc: tuple[float, float, float],
    *,
    min_area_mm2: float = 100.0,
    z_margin_mm: float = 5.0,
    margin_px: int = 32,
    align: int = 4,
) -> LungRegion:
    """Find the slices with lung and a window around the lungs (see the module docstring).

    Args:
        hu: int16 ``(I, R, C)`` CT.
        spacing_irc: Voxel size (index, row, col) in mm.
        min_area_mm2: Lung area a slice needs to count as a lung slice.
        z_margin_mm: Slices segmented beyond the first and last lung slice, in mm.
        margin_px: Pixels added around the lungs' in-plane box.
        align: The window's start is a multiple of this (the U-Net's pooling factor).

    Returns:
        The region to segment.
    """
    depth, height, width = hu.shape
    means = block_means(hu)
    lungish = (means > LUNG_HU_RANGE[0]) & (means < LUNG_HU_RANGE[1])
    lungish = ndimage.binary_opening(lungish, structure=np.ones((1, 3, 3), dtype=bool))
    block_area = BLOCK * spacing_irc[1] * BLOCK * spacing_irc[2]
    area = lungish.sum(axis=(1, 2)) * block_area
    lung_slices = np.flatnonzero(area >= min_area_mm2)
    if lung_slices.size == 0:
        return whole_volume((depth, height, width))
    extra = int(math.ceil(z_margin_mm / spacing_irc[0]))
    first = max(0, int(lung_slices[0]) - extra)
    last = min(depth - 1, int(lung_slices[-1]) + extra)
    blocks = lungish[lung_slices]
    rows = np.flatnonzero(blocks.any(axis=(0, 2)))
    cols = np.flatnonzero(blocks.any(axis=(0, 1)))
    return LungRegion(
        slices=np.arange(first, last + 1, dtype=np.int64),
        rows=_window(rows[0] * BLOCK, (rows[-1] + 1) * BLOCK, height, margin_px, align),
        cols=_window(cols[0] * BLOCK, (cols[-1] + 1) * BLOCK, width, margin_px, align),
        found=True,
    )


def _window(lo: int, hi: int, size: int, margin: int, align: int) -> slice:
    start = max(0, (lo - margin) // align * align)
    stop = min(size, -(-(hi + margin) // align) * align)
    return slice(int(start), int(stop))
