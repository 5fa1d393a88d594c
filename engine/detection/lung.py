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
   Lung must lie inside the body: per slice, the blocks denser than -400 HU
   (skin, muscle, bone) with their holes filled. That leaves out the scanner
   table's foam and other air-like material outside the patient. A slice whose
   body outline is open (cut by the field of view) would lose its lungs this
   way; there the test keeps every lung-like block (it never removes more than
   half of a slice's lung-like area).
4. A slice holds lung when at least ``min_area_mm2`` (1 cm²) stays; the slices
   from the first to the last such slice, widened by ``z_margin_mm`` (5 mm),
   are segmented.
5. Each slice's window is the box of the remaining lung blocks on the lung
   slices within ``z_margin_mm`` of it, widened by ``margin_px`` pixels (24,
   more than the U-Net's 22-pixel reach, so the model's output at every lung
   pixel is the same as on the whole slice), its start aligned to the U-Net's
   pooling grid (a multiple of 4).

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


@dataclass(frozen=True, eq=False)
class LungRegion:
    """Slices and in-plane windows to segment.

    Args:
        slices: int64 ``(K,)`` sorted slice indices to segment.
        windows: int64 ``(K, 4)`` per slice ``(row_start, row_stop, col_start, col_stop)``,
            starts aligned to the U-Net's pooling grid.
        found: Whether lung was found (False: everything is segmented).
    """

    slices: np.ndarray
    windows: np.ndarray
    found: bool

    @property
    def rows(self) -> slice:
        """Rows covered by any slice's window."""
        return slice(int(self.windows[:, 0].min()), int(self.windows[:, 1].max())) if self.slices.size else slice(0, 0)

    @property
    def cols(self) -> slice:
        """Columns covered by any slice's window."""
        return slice(int(self.windows[:, 2].min()), int(self.windows[:, 3].max())) if self.slices.size else slice(0, 0)

    def batch_window(self, start: int, stop: int) -> tuple[slice, slice]:
        """The window covering slices ``slices[start:stop]`` (one batch)."""
        part = self.windows[start:stop]
        return slice(int(part[:, 0].min()), int(part[:, 1].max())), slice(int(part[:, 2].min()), int(part[:, 3].max()))

    def box_irc(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``((i0, r0, c0), (i1, r1, c1))`` box of the segmented region, hi exclusive."""
        if self.slices.size == 0:
            return (0, 0, 0), (0, 0, 0)
        lo = (int(self.slices[0]), int(self.rows.start), int(self.cols.start))
        hi = (int(self.slices[-1]) + 1, int(self.rows.stop), int(self.cols.stop))
        return lo, hi

    def voxel_count(self) -> int:
        """Voxels inside the per-slice windows."""
        w = self.windows
        return int(((w[:, 1] - w[:, 0]) * (w[:, 3] - w[:, 2])).sum())

    def describe(self, shape: tuple[int, int, int]) -> str:
        """One line for logs: how much of the volume is segmented."""
        fraction = self.voxel_count() / max(1, shape[0] * shape[1] * shape[2])
        return (
            f"segmenting {self.slices.size}/{shape[0]} slices in windows within "
            f"{self.rows.stop - self.rows.start}×{self.cols.stop - self.cols.start} pixels "
            f"({100 * fraction:.0f}% of the voxels)"
        )


def whole_volume(shape: tuple[int, int, int]) -> LungRegion:
    """The region covering every slice in full."""
    windows = np.tile(np.array([0, shape[1], 0, shape[2]], dtype=np.int64), (shape[0], 1))
    return LungRegion(np.arange(shape[0], dtype=np.int64), windows, found=False)


def block_means(hu: np.ndarray | torch.Tensor, block: int = BLOCK, chunk: int = 32) -> np.ndarray:
    """Mean of ``clip(HU, -1000, 1000)`` over ``block × block`` in-plane tiles.

    Args:
        hu: int16 ``(I, R, C)``, numpy or a tensor on any device (computed there).
        block: Tile size in pixels.
        chunk: Slices converted to float at a time (bounds the temporary memory).

    Returns:
        float32 ``(I, ceil(R/block), ceil(C/block))``; partial edge tiles average
        their pixels only.
    """
    volume = tensor_view(hu) if isinstance(hu, np.ndarray) else hu
    out = []
    for start in range(0, hu.shape[0], chunk):
        part = volume[start : start + chunk].to(torch.float32).clamp_(-1000.0, 1000.0)
        out.append(F.avg_pool2d(part[:, None], block, ceil_mode=True, count_include_pad=False)[:, 0])
    return torch.cat(out).cpu().numpy()


def find_lung_region(
    hu: np.ndarray | torch.Tensor,
    spacing_irc: tuple[float, float, float],
    *,
    min_area_mm2: float = 100.0,
    z_margin_mm: float = 5.0,
    margin_px: int = 24,
    align: int = 4,
) -> LungRegion:
    """Find the slices with lung and a window around the lungs (see the module docstring).

    Args:
        hu: int16 ``(I, R, C)`` CT, numpy or a tensor on the compute device.
        spacing_irc: Voxel size (index, row, col) in mm.
        min_area_mm2: Lung area a slice needs to count as a lung slice.
        z_margin_mm: Slices segmented beyond the first and last lung slice, in mm.
        margin_px: Pixels added around the lungs' in-plane box.
        align: The window's start is a multiple of this (the U-Net's pooling factor).

    Returns:
        The region to segment.
    """
    depth, height, width = (int(v) for v in hu.shape)
    means = block_means(hu)
    lungish = (means > LUNG_HU_RANGE[0]) & (means < LUNG_HU_RANGE[1])
    lungish = ndimage.binary_opening(lungish, structure=np.ones((1, 3, 3), dtype=bool))
    lungish = inside_body(lungish, means >= LUNG_HU_RANGE[1])
    block_area = BLOCK * spacing_irc[1] * BLOCK * spacing_irc[2]
    area = lungish.sum(axis=(1, 2)) * block_area
    lung_slices = np.flatnonzero(area >= min_area_mm2)
    if lung_slices.size == 0:
        return whole_volume((depth, height, width))
    extra = int(math.ceil(z_margin_mm / spacing_irc[0]))
    first = max(0, int(lung_slices[0]) - extra)
    last = min(depth - 1, int(lung_slices[-1]) + extra)
    # per-slice box of the lung blocks (in blocks), empty slices neutral for min/max
    is_lung = area >= min_area_mm2
    big = np.iinfo(np.int64).max // 4
    row_any = lungish.any(axis=2)
    col_any = lungish.any(axis=1)
    bounds = np.stack(
        [
            np.where(is_lung, np.argmax(row_any, axis=1), big),
            np.where(is_lung, row_any.shape[1] - np.argmax(row_any[:, ::-1], axis=1), -big),
            np.where(is_lung, np.argmax(col_any, axis=1), big),
            np.where(is_lung, col_any.shape[1] - np.argmax(col_any[:, ::-1], axis=1), -big),
        ],
        axis=1,
    ).astype(np.int64)
    # each slice takes the union of the boxes of the lung slices within z_margin_mm
    size = 2 * extra + 1
    lo_rows = ndimage.minimum_filter1d(bounds[:, 0], size, mode="nearest")
    hi_rows = ndimage.maximum_filter1d(bounds[:, 1], size, mode="nearest")
    lo_cols = ndimage.minimum_filter1d(bounds[:, 2], size, mode="nearest")
    hi_cols = ndimage.maximum_filter1d(bounds[:, 3], size, mode="nearest")
    slices = np.arange(first, last + 1, dtype=np.int64)
    boxes = np.stack([lo_rows, hi_rows, lo_cols, hi_cols], axis=1)[slices]
    # a slice with no lung slice within the margin (a gap in the lungs) takes the union of all
    union = np.array([bounds[is_lung, 0].min(), bounds[is_lung, 1].max(), bounds[is_lung, 2].min(), bounds[is_lung, 3].max()])
    gaps = boxes[:, 0] > boxes[:, 1]
    boxes[gaps] = union
    boxes *= BLOCK
    windows = np.stack(
        [
            *_windows(boxes[:, 0], boxes[:, 1], height, margin_px, align),
            *_windows(boxes[:, 2], boxes[:, 3], width, margin_px, align),
        ],
        axis=1,
    )
    return LungRegion(slices=slices, windows=windows, found=True)


def inside_body(lungish: np.ndarray, dense: np.ndarray, keep_fraction: float = 0.5) -> np.ndarray:
    """Lung-like blocks enclosed by the body, slice by slice.

    Args:
        lungish: ``(I, R, C)`` bool lung-like blocks.
        dense: ``(I, R, C)`` bool blocks denser than lung (body wall, bone, the table's shell).
        keep_fraction: A slice whose enclosed lung-like area is below this
            fraction of its lung-like area keeps all of it (its body outline is open).

    Returns:
        ``(I, R, C)`` bool.
    """
    out = lungish.copy()
    for k in np.flatnonzero(lungish.any(axis=(1, 2))):
        enclosed = lungish[k] & ndimage.binary_fill_holes(dense[k])
        if enclosed.sum() >= keep_fraction * lungish[k].sum():
            out[k] = enclosed
    return out


def _windows(lo: np.ndarray, hi: np.ndarray, size: int, margin: int, align: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen ``[lo, hi)`` by ``margin``, align the start down to ``align``, clip to ``[0, size]``."""
    start = np.maximum(0, (lo - margin) // align * align)
    stop = np.minimum(size, -(-(hi + margin) // align) * align)
    return start.astype(np.int64), stop.astype(np.int64)
