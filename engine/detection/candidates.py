"""Candidates from probability peaks: split merged blobs, centre on the core, merge fragments (issue 14).

The book's rule (:func:`~engine.detection.grouping.group_components`) makes
one candidate per eroded connected component and puts it at the component's
centre of mass. That loses nodules in three ways: a nodule touching a vessel
or the pleura becomes part of a larger component whose centre lies elsewhere;
the 3D erosion deletes nodules only one or two slices thick; and a lesion the
segmentation cut into pieces gives several findings. The ``peaks`` method here
keeps every thresholded voxel (no erosion) and:

1. labels the 6-connected components of the thresholded mask;
2. **splits** each component longer than twice the merge distance: seeds are
   the local maxima (within a window of half the merge distance) of
   ``distance to the component's border (mm) × smoothed probability``; seeds
   closer than ``max(merge_mm, r_a, r_b)`` (``r`` = the seed's distance to the
   border, its local radius) are suppressed in favour of the stronger; every
   voxel goes to the seed of the nearest power distance ``|x − s|² − r_s²`` (a
   big sphere keeps its voxels against a thin vessel beside it);
3. **centres** each piece on its core: the probability-weighted mean of the
   piece's voxels within the seed's radius (a short component is one piece
   whose core is the whole component);
4. **merges fragments**: pieces of *different* components closer than
   ``max(merge_mm, r_a, r_b)`` (``r`` = how far the piece reaches from its
   centre) join the piece with the larger probability mass, which keeps its
   centre (the more probable core: a vessel fragment beside a nodule does not
   pull the nodule's centre away) and gains their voxels;
5. drops pieces whose equivalent diameter is under ``min_diameter_mm``
   (specks, which the book's erosion drops).

Everything per voxel is vectorised (``np.bincount``, a k-d tree query, scipy
filters on each split component's box, a k-d tree for its distance transform); Python loops run over the split
components and over the pieces (hundreds), not over voxels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from engine.detection.grouping import Components, label_components
from engine.detection.settings import GroupingSettings


def group_peaks(
    mask: np.ndarray,
    probability: np.ndarray,
    offset_irc: np.ndarray,
    spacing_irc: tuple[float, float, float],
    grouping: GroupingSettings,
) -> Components:
    """The ``peaks`` candidates of a thresholded box (see the module docstring).

    Args:
        mask: bool ``(I, R, C)`` voxels above the threshold, within a box of the volume.
        probability: float32 ``(I, R, C)`` segmentation probability of the same box.
        offset_irc: ``(3,)`` position of the box's first voxel in the volume.
        spacing_irc: Voxel size (index, row, col), mm.
        grouping: ``merge_mm``, ``smooth_mm`` and ``min_diameter_mm`` are used.

    Returns:
        The candidates in raster order of their first voxel, coordinates in the
        volume's frame; ``voxel_counts`` and boxes are those of all the voxels
        given to each candidate.
    """
    labels, count = label_components(mask)
    if count == 0:
        return Components.empty()
    spacing = np.asarray(spacing_irc, dtype=np.float64)
    flat = np.flatnonzero(labels)
    component = labels.ravel()[flat].astype(np.int64) - 1
    points = np.stack(np.unravel_index(flat, mask.shape), axis=1)  # (V, 3) voxel indices in the box
    weight = probability.ravel()[flat].astype(np.float64)
    piece = component.copy()  # which piece each voxel belongs to
    core = np.ones(flat.size, dtype=bool)  # whether it counts for its piece's centre
    pieces = count
    boxes = ndimage.find_objects(labels)
    split_mm = 2.0 * grouping.merge_mm
    order = np.argsort(component, kind="stable")  # voxels of each component, contiguous
    starts = np.searchsorted(component[order], np.arange(count + 1))
    extents = np.array([[s.stop - s.start for s in box] for box in boxes]) * spacing
    large = np.flatnonzero(extents.max(axis=1) > split_mm)
    depth = np.zeros(flat.size)
    in_large = np.isin(component, large)
    if large.size:
        only_large = np.zeros(mask.shape, dtype=bool)  # each voxel's depth within its own component
        only_large.ravel()[flat[in_large]] = True
        depth[in_large] = _depth_mm(only_large, points[in_large], spacing)
    for k in large:
        box = boxes[k]
        members = order[starts[k] : starts[k + 1]]
        local, is_core = _split_component(
            labels[box] == k + 1, probability[box], points[members] - [s.start for s in box], depth[members],
            spacing, grouping,
        )
        core[members] = is_core
        if local.max() > 0:  # piece 0 keeps the component's number, the others get new ones
            piece[members] = np.where(local == 0, k, pieces + local - 1)
            pieces += int(local.max())
    group = _merge_fragments(piece, pieces, component, core, weight, points, spacing, grouping.merge_mm)
    kept_core = core & (piece == group)  # a merged group keeps the centre of its strongest piece
    return _measure(group, kept_core, weight, points, flat, mask.shape, offset_irc, spacing, grouping.min_diameter_mm)


def _split_component(
    inside: np.ndarray,
    probability: np.ndarray,
    points: np.ndarray,
    point_depth: np.ndarray,
    spacing: np.ndarray,
    grouping: GroupingSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeds, pieces and cores of one component.

    Args:
        inside: bool box of the component.
        probability: float32 probability of the same box.
        points: ``(V, 3)`` the component's voxels in the box, in the caller's order.
        point_depth: ``(V,)`` their distance to the nearest voxel outside the component, mm.
        spacing: ``(3,)`` voxel size, mm.
        grouping: ``merge_mm`` and ``smooth_mm``.

    Returns:
        ``(piece (V,) int64 0..S-1, core (V,) bool)``.
    """
    depth = np.zeros(inside.shape)
    depth[tuple(points.T)] = point_depth
    smoothed = probability * inside
    if grouping.smooth_mm > 0:
        smoothed = ndimage.gaussian_filter(smoothed, sigma=grouping.smooth_mm / spacing, mode="constant", truncate=2.5)
    score = depth * smoothed
    window = np.maximum(3, 2 * np.round(0.5 * grouping.merge_mm / spacing).astype(int) + 1)
    peaks = inside & (score > 0) & (score >= ndimage.maximum_filter(score, size=tuple(window), mode="constant"))
    seeds = np.argwhere(peaks)
    strength = score[peaks]
    radius = depth[peaks]
    ranked = np.argsort(-strength, kind="stable")
    seeds, radius = seeds[ranked] * spacing, radius[ranked]
    kept: list[int] = []
    for s in range(len(seeds)):  # greedy suppression over the few window maxima
        if kept:
            gap = np.linalg.norm(seeds[kept] - seeds[s], axis=1)
            if np.any(gap < np.maximum(grouping.merge_mm, np.maximum(radius[kept], radius[s]))):
                continue
        kept.append(s)
    seeds, radius = seeds[kept], radius[kept]
    xyz = points * spacing
    if len(kept) == 1:
        piece = np.zeros(len(points), dtype=np.int64)
    else:  # nearest power distance |x - s|^2 - r^2, as a plain nearest neighbour in 4D
        squared = radius**2
        lift = np.sqrt(np.maximum(squared.max() - squared, 0.0))
        _, piece = cKDTree(np.column_stack([seeds, lift])).query(np.column_stack([xyz, np.zeros(len(xyz))]))
        piece = np.asarray(piece, dtype=np.int64)
    reach = radius[piece] + 0.5 * spacing.max()
    core = np.linalg.norm(xyz - seeds[piece], axis=1) <= reach
    return piece, core


def _depth_mm(mask: np.ndarray, points: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each of ``points`` (voxels of ``mask``) to the nearest voxel outside ``mask``.

    This is the Euclidean distance transform at those voxels: the nearest
    outside voxel always has a face neighbour inside (a step towards the inside
    voxel is closer to it), so a k-d tree over that outer shell gives it exactly,
    in time proportional to the voxels asked for rather than to their box (a
    vessel tree's box is most of a lung). Outside the array counts as outside.
    """
    padded = np.pad(mask, 1)
    grown = padded.copy()
    for axis in range(3):
        for step in (1, -1):
            grown |= np.roll(padded, step, axis=axis)  # the padding keeps np.roll from wrapping
    shell = np.argwhere(grown & ~padded) - 1
    distance, _ = cKDTree(shell * spacing).query(points * spacing)
    return np.asarray(distance, dtype=np.float64)


def _merge_fragments(
    piece: np.ndarray,
    pieces: int,
    component: np.ndarray,
    core: np.ndarray,
    weight: np.ndarray,
    points: np.ndarray,
    spacing: np.ndarray,
    merge_mm: float,
) -> np.ndarray:
    """The merged group of each voxel: pieces of different components within one lesion's radius join.

    Returns:
        ``(V,)`` int64 group number of each voxel (a piece number: that of the piece kept).
    """
    mass, center = _cores(piece, pieces, core, weight, points)
    xyz = center * spacing
    offsets = np.linalg.norm(points * spacing - xyz[piece], axis=1)
    by_piece = np.argsort(piece, kind="stable")
    firsts = np.searchsorted(piece[by_piece], np.arange(pieces))
    radius = np.maximum.reduceat(offsets[by_piece], firsts)  # how far each piece reaches from its centre, mm
    owner = np.zeros(pieces, dtype=np.int64)
    owner[piece] = component
    reach = np.maximum(merge_mm, radius)
    # a pair lies within max(merge_mm, r_a, r_b) when it lies within the larger one's reach: found from that side
    found = cKDTree(xyz).query_ball_point(xyz, r=reach)
    sizes = np.fromiter((len(f) for f in found), dtype=np.int64, count=pieces)
    first = np.repeat(np.arange(pieces), sizes)
    second = np.concatenate([np.asarray(f, dtype=np.int64) for f in found]) if pieces else np.zeros(0, np.int64)
    a, b = np.concatenate([first, second]), np.concatenate([second, first])
    other = owner[a] != owner[b]  # pieces of one component were separated on purpose
    a, b = a[other], b[other]
    by_a = np.argsort(a, kind="stable")
    a, b = a[by_a], b[by_a]
    bounds = np.searchsorted(a, np.arange(pieces + 1))
    target = np.arange(pieces)
    done = np.zeros(pieces, dtype=bool)
    for p in np.argsort(-mass, kind="stable"):
        if done[p]:
            continue
        done[p] = True
        near = b[bounds[p] : bounds[p + 1]]
        near = near[~done[near]]
        target[near] = p
        done[near] = True
    return target[piece]


def _cores(
    group: np.ndarray, groups: int, core: np.ndarray, weight: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(mass (G,), centre (G, 3) voxel)``: probability mass and weighted centre of each group's core voxels."""
    w = np.where(core, weight, 0.0)
    mass = np.bincount(group, weights=w, minlength=groups)
    center = np.stack([np.bincount(group, weights=w * points[:, a], minlength=groups) for a in range(3)], axis=1)
    safe = np.where(mass > 0, mass, 1.0)
    return mass, center / safe[:, None]


def _measure(
    group: np.ndarray,
    core: np.ndarray,
    weight: np.ndarray,
    points: np.ndarray,
    flat: np.ndarray,
    shape: tuple[int, ...],
    offset_irc: np.ndarray,
    spacing: np.ndarray,
    min_diameter_mm: float,
) -> Components:
    """Centres, sizes and boxes of the groups, in raster order of their first voxel, small ones dropped."""
    numbers, first, dense = np.unique(group, return_index=True, return_inverse=True)
    dense = dense.reshape(-1)
    n = numbers.size
    _, center = _cores(dense, n, core, weight, points)
    counts = np.bincount(dense, minlength=n).astype(np.int64)
    volume = np.zeros(shape, dtype=np.int32)
    volume.ravel()[flat] = dense + 1
    boxes = ndimage.find_objects(volume, max_label=n)
    lo = np.array([[s.start for s in box] for box in boxes], dtype=np.int64).reshape(-1, 3)
    hi = np.array([[s.stop for s in box] for box in boxes], dtype=np.int64).reshape(-1, 3)
    diameter = np.cbrt(6.0 * counts * float(np.prod(spacing)) / np.pi)
    keep = np.argsort(first, kind="stable")  # flat is in raster order: the first voxel orders the groups
    keep = keep[diameter[keep] >= min_diameter_mm]
    offset = np.asarray(offset_irc, dtype=np.int64)
    return Components(center[keep] + offset, counts[keep], lo[keep] + offset, hi[keep] + offset)
