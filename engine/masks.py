"""Ground-truth nodule masks built from annotated centres (SPEC §1.3).

The LUNA16 annotations give only a centre and a diameter per nodule, so the
voxel mask a segmentation model is trained on is derived from the CT itself:
from each centre a half-width is grown along each axis while the voxels on
both sides stay above a density threshold, the resulting box is set, and the
union of boxes is intersected with ``hu > threshold``.
"""

from __future__ import annotations

import numpy as np

#: Density threshold separating nodule tissue from lung parenchyma, HU.
MASK_THRESHOLD_HU = -700.0
#: Half-width every box starts from, voxels.
START_RADIUS = 2


def _axis_radius(profile: np.ndarray, center: int, threshold: float, start: int) -> int:
    """Grow a half-width along one line of voxels.

    Args:
        profile: ``(n,)`` HU values along the axis through the centre.
        center: Index of the centre in ``profile``.
        threshold: HU a voxel must exceed for growth to continue.
        start: The first half-width tried.

    Returns:
        The first half-width ``r >= start`` at which a voxel on either side is at
        or below ``threshold``; when growth runs off the volume first, the last
        half-width that still fitted (at least ``start``, the box is clipped).
    """
    n = profile.shape[0]
    radii = np.arange(start, n + 1)
    low, high = center - radii, center + radii
    inside = (low >= 0) & (high < n)
    dense = np.zeros(radii.shape, dtype=bool)
    dense[inside] = (profile[low[inside]] > threshold) & (profile[high[inside]] > threshold)
    stop = np.flatnonzero(~dense)[0]  # the last radius always leaves the volume
    if inside[stop]:
        return int(radii[stop])
    return int(max(radii[stop] - 1, start))


def nodule_box_radii(
    hu: np.ndarray,
    center_irc: np.ndarray | tuple[int, int, int],
    threshold_hu: float = MASK_THRESHOLD_HU,
    start_radius: int = START_RADIUS,
) -> tuple[int, int, int]:
    """Half-widths of one nodule's box along (index, row, col).

    Args:
        hu: ``(I, R, C)`` HU volume (any integer or float dtype).
        center_irc: Integer voxel centre (index, row, col), inside the volume.
        threshold_hu: Growth continues while both sides exceed this, HU.
        start_radius: Smallest half-width, voxels.

    Returns:
        ``(r_index, r_row, r_col)`` in voxels.
    """
    ci, cr, cc = (int(v) for v in center_irc)
    return (
        _axis_radius(hu[:, cr, cc], ci, threshold_hu, start_radius),
        _axis_radius(hu[ci, :, cc], cr, threshold_hu, start_radius),
        _axis_radius(hu[ci, cr, :], cc, threshold_hu, start_radius),
    )


def nodule_mask(
    hu: np.ndarray,
    centers_irc: np.ndarray,
    threshold_hu: float = MASK_THRESHOLD_HU,
    start_radius: int = START_RADIUS,
) -> np.ndarray:
    """The ground-truth nodule mask of a volume (SPEC §1.3).

    Args:
        hu: ``(I, R, C)`` HU volume.
        centers_irc: ``(K, 3)`` integer nodule centres (index, row, col); centres
            outside the volume are ignored.
        threshold_hu: Density threshold, HU (-700).
        start_radius: Smallest box half-width, voxels (2).

    Returns:
        ``(I, R, C)`` bool mask: the union of the grown boxes AND ``hu > threshold_hu``.
    """
    shape = np.asarray(hu.shape)
    centers = np.asarray(centers_irc, dtype=np.int64).reshape(-1, 3)
    inside = np.all((centers >= 0) & (centers < shape), axis=1)
    boxes = np.zeros(hu.shape, dtype=bool)
    for center in centers[inside]:
        radii = np.asarray(nodule_box_radii(hu, center, threshold_hu, start_radius))
        low = np.maximum(center - radii, 0)
        high = np.minimum(center + radii + 1, shape)
        boxes[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = True
    return boxes & (hu > threshold_hu)


def mask_slice_indices(mask: np.ndarray) -> np.ndarray:
    """Indices of the slices (axis 0) that hold at least one mask voxel.

    Args:
        mask: ``(I, R, C)`` bool mask.

    Returns:
        ``(M,)`` int64 slice indices, ascending.
    """
    return np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)).astype(np.int64)
