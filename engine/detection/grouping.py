"""Grouping the segmentation into candidates (SPEC §4, steps 2–3).

Threshold the probability levels, erode once with the 3D cross (drops specks,
splits blobs touching by a voxel), label 6-connected components with
connected-components-3d (scipy's labeller as fallback), and measure every
component at once with ``np.bincount``: the centre of mass of the eroded
component weighted by ``clip(HU, -1000, 1000) + 1001`` (the book's rule; its
per-label ``center_of_mass`` took seconds per CT), and the size of the
component grown back by the one voxel layer the erosion removed, within the
thresholded mask (so that diameters are not those of the eroded core).

The erosion is selectable (:data:`~engine.detection.settings.EROSIONS`, chosen in
:class:`~engine.detection.settings.GroupingSettings`): the default is SPEC's 3D
cross; ``in-plane`` keeps nodules that span only two slices, which the 3D
cross deletes (on thick slices that is most nodules under ~5 mm).

Only the bounding box of the thresholded voxels is processed; thresholding,
the box and the erosion run where the probability levels are (the GPU during
a detection), labelling and measuring on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from engine.detection.result import PROBABILITY_LEVELS, Candidate, DetectionResult, threshold_level
from engine.detection.runtime import tensor_view
from engine.detection.settings import GroupingSettings

try:
    import cc3d
except ImportError:  # scipy's labeller below gives the same labels, more slowly
    cc3d = None

_CROSS_SHIFTS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
_PLANE_SHIFTS = tuple(shift for shift in _CROSS_SHIFTS if shift[0] == 0)

@dataclass(frozen=True, eq=False)
class Components:
    """Measured connected components, in raster order of their first voxel.

    Args:
        centers_irc: ``(N, 3)`` float64 weighted centres (index, row, col).
        voxel_counts: ``(N,)`` int64 voxels of each grown-back component.
        bbox_lo: ``(N, 3)`` int64 first voxel of each component's box.
        bbox_hi: ``(N, 3)`` int64 one past the last voxel.
    """

    centers_irc: np.ndarray
    voxel_counts: np.ndarray
    bbox_lo: np.ndarray
    bbox_hi: np.ndarray

    def __len__(self) -> int:
        return int(self.centers_irc.shape[0])

    @classmethod
    def empty(cls) -> Components:
        """No components."""
        return cls(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))


def erode_cross(mask: np.ndarray | torch.Tensor, in_plane: bool = False) -> np.ndarray | torch.Tensor:
    """One binary erosion with the 6-neighbour cross; outside the array counts as background.

    Args:
        mask: bool ``(I, R, C)``, numpy or a tensor on any device (computed there).
        in_plane: Use only the 4 neighbours within the slice (rows and columns).

    Returns:
        bool ``(I, R, C)`` of the same kind: voxels set in ``mask`` whose six (or
        four in-plane) face neighbours are set too.
    """
    if isinstance(mask, np.ndarray):
        padded = np.zeros(tuple(s + 2 for s in mask.shape), dtype=bool)
    else:
        padded = torch.zeros(tuple(s + 2 for s in mask.shape), dtype=torch.bool, device=mask.device)
    padded[1:-1, 1:-1, 1:-1] = mask
    out = mask.copy() if isinstance(mask, np.ndarray) else mask.clone()
    depth, rows, cols = padded.shape
    for di, dr, dc in _PLANE_SHIFTS if in_plane else _CROSS_SHIFTS:
        out &= padded[1 + di : depth - 1 + di, 1 + dr : rows - 1 + dr, 1 + dc : cols - 1 + dc]
    return out


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of a bool volume.

    Returns:
        ``(labels, n)``: unsigned labels ``1..n`` in raster order of each
        component's first voxel (0 = background), and the number of components.
    """
    if cc3d is not None:
        labels, count = cc3d.connected_components(mask, connectivity=6, return_N=True)
        return labels, int(count)
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 1))
    return labels, int(count)


def grow_labels(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give each unlabelled voxel of ``mask`` the largest label among its six neighbours.

    Args:
        labels: ``(I, R, C)`` labels of the eroded components (a subset of ``mask``).
        mask: bool ``(I, R, C)`` thresholded (not eroded) voxels.

    Returns:
        Labels of the same dtype: the components grown back by one voxel layer
        inside ``mask``; voxels of ``mask`` touching no component stay 0.
    """
    shape = labels.shape
    padded = np.zeros(tuple(s + 2 for s in shape), dtype=labels.dtype)
    padded[1:-1, 1:-1, 1:-1] = labels
    rim = np.flatnonzero(mask & (labels == 0))
    i, r, c = np.unravel_index(rim, shape)
    flat = np.ravel_multi_index((i + 1, r + 1, c + 1), padded.shape)
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
    best = np.zeros(rim.size, dtype=labels.dtype)
    flat_padded = padded.ravel()
    for shift in _CROSS_SHIFTS:
        np.maximum(best, flat_padded[flat + int(np.dot(shift, strides))], out=best)
    grown = labels.copy()
    grown.ravel()[rim] = best
    return grown


def measure_components(
    labels: np.ndarray, grown: np.ndarray, count: int, hu: np.ndarray, offset_irc: np.ndarray
) -> Components:
    """Weighted centres (from ``labels``) and sizes and boxes (from ``grown``) of all components.

    Args:
        labels: ``(I, R, C)`` eroded component labels ``1..count``.
        grown: ``(I, R, C)`` the same components grown back (:func:`grow_labels`).
        count: Number of components.
        hu: ``(I, R, C)`` HU of the same box (int16).
        offset_irc: ``(3,)`` position of the box's first voxel in the volume.

    Returns:
        The components, coordinates in the volume's frame.
    """
    flat = np.flatnonzero(labels)
    which = labels.ravel()[flat].astype(np.int64)
    i, r, c = np.unravel_index(flat, labels.shape)
    weights = np.clip(hu[i, r, c].astype(np.float64), -1000.0, 1000.0) + 1001.0
    bins = count + 1
    total = np.bincount(which, weights=weights, minlength=bins)[1:]
    centers = np.stack(
        [np.bincount(which, weights=weights * axis, minlength=bins)[1:] for axis in (i, r, c)], axis=1
    ) / total[:, None]
    counts = np.bincount(grown.ravel(), minlength=bins)[1:].astype(np.int64)
    boxes = ndimage.find_objects(grown, max_label=count)
    lo = np.array([[s.start for s in box] for box in boxes], dtype=np.int64).reshape(-1, 3)
    hi = np.array([[s.stop for s in box] for box in boxes], dtype=np.int64).reshape(-1, 3)
    offset = np.asarray(offset_irc, dtype=np.int64)
    return Components(centers + offset, counts, lo + offset, hi + offset)


def group_components(
    levels: np.ndarray | torch.Tensor,
    hu: np.ndarray,
    grouping: GroupingSettings | None = None,
    spacing_irc: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Components:
    """Threshold, erode, label and measure: the candidates of a segmentation.

    With ``grouping.method == "peaks"`` the thresholded voxels go, without
    erosion, to :func:`engine.detection.candidates.group_peaks` instead (split,
    core-centred, fragments merged; HU is not used).

    Args:
        levels: ``uint8 (I, R, C)`` probability levels (``round(255·p)``), numpy or
            a torch tensor on any device (thresholding and the bounding box are
            computed there).
        hu: ``int16 (I, R, C)`` HU of the CT, for the centre weights.
        grouping: Threshold (voxels with ``p > seg_threshold``) and erosion
            (one of :data:`~engine.detection.settings.EROSIONS`); default:
            :class:`~engine.detection.settings.GroupingSettings` ``()`` (0.5, ``3d``, SPEC §4).
        spacing_irc: Voxel size (index, row, col) in mm, for the ``peaks`` method's distances.

    Returns:
        All components (possibly none).
    """
    if grouping is None:
        grouping = GroupingSettings()
    erosion = grouping.erosion
    tensor = tensor_view(levels) if isinstance(levels, np.ndarray) else levels
    mask = tensor > threshold_level(grouping.seg_threshold)
    box = _bounding_box(mask)
    if box is None:
        return Components.empty()
    window = tuple(slice(lo, hi) for lo, hi in box)
    sub_t = mask[window]
    offset = np.array([lo for lo, _ in box], dtype=np.int64)
    if grouping.method == "peaks":
        from engine.detection.candidates import group_peaks  # imports grouping: not at module level

        probability = tensor[window].cpu().numpy().astype(np.float32) / np.float32(PROBABILITY_LEVELS)
        return group_peaks(sub_t.cpu().numpy(), probability, offset, spacing_irc, grouping)
    eroded_t = sub_t if erosion == "none" else erode_cross(sub_t, in_plane=erosion == "in-plane")
    if not bool(eroded_t.any()):
        return Components.empty()
    sub, eroded = sub_t.cpu().numpy(), eroded_t.cpu().numpy()
    labels, count = label_components(eroded)
    grown = grow_labels(labels, sub)
    return measure_components(labels, grown, count, hu[window], offset)


def _bounding_box(mask: torch.Tensor) -> tuple[tuple[int, int], ...] | None:
    """``((i0, i1), (r0, r1), (c0, c1))`` of the set voxels, hi exclusive, or None.

    The slice range is found first, so the row and column scans only read those slices.
    """
    present = torch.nonzero(mask.flatten(1).any(dim=1)).flatten()
    if present.numel() == 0:
        return None
    i0, i1 = int(present[0]), int(present[-1]) + 1
    rows_cols = mask[i0:i1].any(dim=0)
    rows = torch.nonzero(rows_cols.any(dim=1)).flatten()
    cols = torch.nonzero(rows_cols.any(dim=0)).flatten()
    return (i0, i1), (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def equivalent_diameter_mm(voxel_counts: np.ndarray, spacing_irc: tuple[float, float, float]) -> np.ndarray:
    """Diameter (mm) of the sphere whose volume equals ``voxel_counts`` voxels of ``spacing_irc`` mm."""
    volume = np.asarray(voxel_counts, dtype=np.float64) * float(np.prod(spacing_irc))
    return np.cbrt(6.0 * volume / np.pi)


def carried_probabilities(
    previous: DetectionResult | None,
    starts: np.ndarray,
    crop_shape: tuple[int, int, int],
    voxel_counts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities a re-grouping can keep: those of ``previous``'s candidates whose crop is the same.

    Args:
        previous: The result being re-grouped (None: nothing is known).
        starts: ``(N, 3)`` int crop starts of the new candidates.
        crop_shape: The classifier crop, to place ``previous``'s crops the same way.
        voxel_counts: ``(N,)`` region sizes of the new candidates: when given, a
            probability is kept only if the region's size is the same too (a
            classifier with a shape head uses it).

    Returns:
        ``(p_nodule, p_malignant)`` float64 ``(N,)``; NaN where the crop is new and must be classified.
    """
    from engine.crops import crop_starts

    n = len(starts)
    p_nodule, p_malignant = np.full(n, np.nan), np.full(n, np.nan)
    if previous is None or not previous.candidates or n == 0:
        return p_nodule, p_malignant
    old = np.array([c.center_irc for c in previous.candidates])
    sized = voxel_counts is not None

    def key(start: list[int], count: int) -> tuple[int, ...]:
        return (*start, count) if sized else tuple(start)

    known = {
        key(s, c.voxel_count): (c.p_nodule, c.p_malignant)
        for s, c in zip(crop_starts(old, crop_shape, previous.shape).tolist(), previous.candidates)
    }
    counts = np.asarray(voxel_counts).tolist() if sized else [0] * n
    for i, (start, count) in enumerate(zip(np.asarray(starts).tolist(), counts)):
        if key(start, int(count)) in known:
            p_nodule[i], p_malignant[i] = known[key(start, int(count))]
    return p_nodule, p_malignant


def make_candidates(
    components: Components, geometry, p_nodule: np.ndarray, p_malignant: np.ndarray
) -> tuple[Candidate, ...]:
    """The :class:`Candidate` of each component, numbered 1.. in component order.

    Args:
        components: The measured components.
        geometry: The CT's :class:`~engine.geometry.Geometry` (irc → LPS mm, voxel spacing).
        p_nodule: ``(N,)`` nodule probabilities.
        p_malignant: ``(N,)`` malignancy probabilities.
    """
    from engine.geometry import irc_to_xyz

    centers_xyz = irc_to_xyz(geometry, components.centers_irc)
    diameters = equivalent_diameter_mm(components.voxel_counts, geometry.spacing_irc)
    return tuple(
        Candidate(
            id=i + 1,
            center_irc=tuple(float(v) for v in components.centers_irc[i]),
            center_xyz=tuple(float(v) for v in centers_xyz[i]),
            p_nodule=float(p_nodule[i]),
            p_malignant=float(p_malignant[i]),
            voxel_count=int(components.voxel_counts[i]),
            diameter_mm=float(diameters[i]),
            bbox_irc=(tuple(int(v) for v in components.bbox_lo[i]), tuple(int(v) for v in components.bbox_hi[i])),
        )
        for i in range(len(components))
    )
