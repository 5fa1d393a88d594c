"""Model inputs cut from a CT volume (SPEC §1.3): classifier crops and segmentation context stacks.

Classifier crop: ``(32, 48, 48)`` voxels (index, row, col) around a candidate.
Per axis ``start = round(c - w/2)`` (halves round up); a crop that would leave
the volume is shifted back inside; along an axis shorter than the crop, the
crop covers the whole axis and the rest is padded with -1000 HU.

Segmentation input: for slice ``k`` the 7 slices ``k-3 .. k+3`` (indices beyond
the volume repeat the edge slice) as channels, HU clipped to [-1000, 1000].

Both come as numpy functions (for training and tests) and torch functions that
work on a volume already on the compute device (for the detector). All index
arithmetic is vectorised; no function copies the whole volume.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: Default classifier crop, voxels (index, row, col).
CLASSIFIER_CROP: tuple[int, int, int] = (32, 48, 48)
#: Neighbouring slices on each side of a segmentation input slice.
CONTEXT_SLICES = 3
#: HU range the models see.
HU_MIN, HU_MAX = -1000, 1000
#: Value of voxels outside the volume.
PAD_HU = -1000


def crop_starts(
    center_irc: Sequence[float] | np.ndarray,
    crop_shape: Sequence[int],
    volume_shape: Sequence[int],
) -> np.ndarray:
    """First voxel of each crop, shifted so the crop stays inside the volume.

    Args:
        center_irc: ``(3,)`` or ``(N, 3)`` crop centres (index, row, col) in voxels,
            fractional allowed.
        crop_shape: Crop size ``(w_i, w_r, w_c)`` in voxels.
        volume_shape: Volume size ``(n_i, n_r, n_c)``.

    Returns:
        int64 starts, the shape of ``center_irc``. Along an axis with ``n >= w``
        they lie in ``[0, n - w]``; along a shorter axis in ``[n - w, 0]`` (the
        crop covers the whole axis and is padded).
    """
    centers = np.asarray(center_irc, dtype=np.float64)
    widths = np.asarray(crop_shape, dtype=np.int64)
    sizes = np.asarray(volume_shape, dtype=np.int64)
    starts = np.floor(centers - widths / 2.0 + 0.5).astype(np.int64)
    low = np.minimum(0, sizes - widths)
    high = np.maximum(0, sizes - widths)
    return np.clip(starts, low, high)


def _axis_indices(starts: np.ndarray, width: int) -> np.ndarray:
    return starts[:, None] + np.arange(width, dtype=np.int64)[None, :]


def gather_crops(
    hu: np.ndarray,
    centers_irc: np.ndarray | Sequence[Sequence[float]],
    crop_shape: Sequence[int] = CLASSIFIER_CROP,
) -> np.ndarray:
    """Cut crops around many centres at once (numpy).

    Args:
        hu: ``(n_i, n_r, n_c)`` volume, any dtype (usually int16 HU).
        centers_irc: ``(N, 3)`` centres (index, row, col) in voxels.
        crop_shape: Crop size in voxels.

    Returns:
        ``(N, *crop_shape)`` array of ``hu``'s dtype, not clipped; voxels outside
        the volume hold -1000.
    """
    centers = np.asarray(centers_irc, dtype=np.float64).reshape(-1, 3)
    starts = crop_starts(centers, crop_shape, hu.shape)
    idx = [_axis_indices(starts[:, axis], int(crop_shape[axis])) for axis in range(3)]
    zi, yi, xi = idx[0][:, :, None, None], idx[1][:, None, :, None], idx[2][:, None, None, :]
    if all(hu.shape[axis] >= crop_shape[axis] for axis in range(3)):
        return hu[zi, yi, xi]
    inside = [(ix >= 0) & (ix < hu.shape[axis]) for axis, ix in enumerate((zi, yi, xi))]
    clamped = [np.clip(ix, 0, hu.shape[axis] - 1) for axis, ix in enumerate((zi, yi, xi))]
    crops = hu[clamped[0], clamped[1], clamped[2]]
    return np.where(inside[0] & inside[1] & inside[2], crops, np.asarray(PAD_HU, dtype=hu.dtype))


def measure_at_centres(
    hu: np.ndarray,
    centers_irc: np.ndarray,
    measure,
    width: int,
    chunk: int = 32,
    crop_shape: Sequence[int] = CLASSIFIER_CROP,
) -> np.ndarray:
    """``measure(crops, centres_in_crop)`` on each centre's classifier crop, a chunk of crops at a time.

    The crops are the classifiers' (edge-shifted as SPEC §1.3, so a centre near
    the volume's edge is not in its middle); ``measure`` gets each candidate's own
    centre in its crop and returns ``(m,)`` or ``(m, width)`` values for ``m`` crops.

    Returns:
        float64 ``(N,)`` when ``width`` is 0, else ``(N, width)``.
    """
    centers = np.asarray(centers_irc, dtype=np.float64).reshape(-1, 3)
    inside = centers - crop_starts(centers, crop_shape, hu.shape)
    out = np.empty((len(centers), width) if width else len(centers), dtype=np.float64)
    for start in range(0, len(centers), chunk):  # crops cut a chunk at a time, not all at once
        stop = min(len(centers), start + chunk)
        out[start:stop] = measure(gather_crops(hu, centers[start:stop], crop_shape), inside[start:stop])
    return out


def gather_crops_torch(volume: torch.Tensor, starts: torch.Tensor, crop_shape: Sequence[int] = CLASSIFIER_CROP) -> torch.Tensor:
    """Cut crops from a volume on its device (torch twin of :func:`gather_crops`).

    Args:
        volume: ``(n_i, n_r, n_c)`` tensor (int16 HU), on any device.
        starts: ``(N, 3)`` int64 starts from :func:`crop_starts`, same device.
        crop_shape: Crop size in voxels.

    Returns:
        ``(N, *crop_shape)`` tensor of ``volume``'s dtype; outside voxels hold -1000.
    """
    shape = volume.shape
    idx = [starts[:, axis, None] + torch.arange(int(crop_shape[axis]), device=starts.device) for axis in range(3)]
    zi, yi, xi = idx[0][:, :, None, None], idx[1][:, None, :, None], idx[2][:, None, None, :]
    if all(shape[axis] >= crop_shape[axis] for axis in range(3)):
        return volume[zi, yi, xi]
    inside = [(ix >= 0) & (ix < shape[axis]) for axis, ix in enumerate((zi, yi, xi))]
    clamped = [ix.clamp(0, shape[axis] - 1) for axis, ix in enumerate((zi, yi, xi))]
    crops = volume[clamped[0], clamped[1], clamped[2]]
    pad = torch.full((), PAD_HU, dtype=volume.dtype, device=volume.device)
    return torch.where(inside[0] & inside[1] & inside[2], crops, pad)


def classifier_input(crops: torch.Tensor) -> torch.Tensor:
    """Raw HU crops ``(N, *crop)`` → float32 ``(N, 1, *crop)`` clipped to [-1000, 1000]."""
    return crops.to(torch.float32).clamp_(HU_MIN, HU_MAX).unsqueeze(1)


def context_indices(slice_indices: Sequence[int] | np.ndarray, depth: int, context: int = CONTEXT_SLICES) -> np.ndarray:
    """Slice numbers feeding each segmentation input, edge slices repeated.

    Args:
        slice_indices: ``(B,)`` slices to segment.
        depth: Number of slices in the volume.
        context: Neighbours on each side (3 → 7 channels).

    Returns:
        ``(B, 2*context+1)`` int64 slice numbers in ``[0, depth)``.
    """
    centre = np.asarray(slice_indices, dtype=np.int64).reshape(-1, 1)
    offsets = np.arange(-context, context + 1, dtype=np.int64)[None, :]
    return np.clip(centre + offsets, 0, depth - 1)


def context_slices(
    hu: np.ndarray,
    slice_indices: Sequence[int] | np.ndarray,
    context: int = CONTEXT_SLICES,
    roi: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Segmentation inputs for some slices (numpy).

    Args:
        hu: ``(n_i, n_r, n_c)`` int16 HU volume.
        slice_indices: ``(B,)`` slices to segment.
        context: Neighbours on each side.
        roi: Optional ``(row_slice, col_slice)`` in-plane window to cut.

    Returns:
        float32 ``(B, 2*context+1, rows, cols)``, HU clipped to [-1000, 1000].
    """
    rows, cols = roi if roi is not None else (slice(None), slice(None))
    idx = context_indices(slice_indices, hu.shape[0], context)
    stack = hu[:, rows, cols][idx]
    out = stack.astype(np.float32)
    return np.clip(out, HU_MIN, HU_MAX, out=out)


def context_slices_torch(
    volume: torch.Tensor,
    slice_indices: torch.Tensor,
    context: int = CONTEXT_SLICES,
    roi: tuple[slice, slice] | None = None,
) -> torch.Tensor:
    """Segmentation inputs built on the volume's device (torch twin of :func:`context_slices`).

    Only the ``B × 7`` requested in-plane windows are copied, never the volume.

    Args:
        volume: ``(n_i, n_r, n_c)`` int16 HU tensor on the compute device.
        slice_indices: ``(B,)`` int64 slices to segment, same device.
        context: Neighbours on each side.
        roi: Optional ``(row_slice, col_slice)`` in-plane window.

    Returns:
        float32 ``(B, 2*context+1, rows, cols)`` clipped to [-1000, 1000].
    """
    rows, cols = roi if roi is not None else (slice(None), slice(None))
    offsets = torch.arange(-context, context + 1, device=slice_indices.device)
    idx = (slice_indices[:, None] + offsets[None, :]).clamp_(0, volume.shape[0] - 1)
    stack = volume[:, rows, cols][idx]
    return stack.to(torch.float32).clamp_(HU_MIN, HU_MAX)
