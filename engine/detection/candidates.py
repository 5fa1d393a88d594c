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
   centre), and fragments (at most half the equivalent diameter of a larger
   piece) whose centre lies within the larger one's equivalent radius plus
   ``merge_mm``, join the piece with the larger probability mass, which keeps
   its centre (the more probable core: a vessel fragment beside a nodule does
   not pull the nodule's centre away) and gains their voxels;
5. drops pieces whose equivalent diameter is under ``min_diameter_mm``
   (specks, which the book's erosion drops).

Everything per voxel is vectorised (``np.bincount``, ``reduceat`` for the
boxes, scipy filters on each split component's box, k-d trees over the seeds
and pieces); the depth is a sparse exact Euclidean distance transform
(:func:`_depth_mm`) whose work follows the voxels and their depth, not the box,
and does not depend on where the box lies. Python loops run over the split
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
    split_mm = 2.0 * grouping.merge_mm
    order = np.argsort(component, kind="stable")  # voxels of each component, contiguous, raster order within
    starts = np.searchsorted(component[order], np.arange(count + 1))
    lo = np.minimum.reduceat(points[order], starts[:-1], axis=0)  # each component's box, from its voxels
    hi = np.maximum.reduceat(points[order], starts[:-1], axis=0) + 1
    large = np.flatnonzero(((hi - lo) * spacing).max(axis=1) > split_mm)
    if large.size:
        depth = np.zeros(flat.size)
        members = order[np.concatenate([np.arange(starts[k], starts[k + 1]) for k in large])]
        depth[members] = _depth_mm(points[members], spacing)  # each voxel's depth within its own component
    for k in large:
        box = tuple(slice(a, b) for a, b in zip(lo[k], hi[k]))
        members = order[starts[k] : starts[k + 1]]
        local, is_core = _split_component(
            labels[box] == k + 1, probability[box], points[members] - lo[k], depth[members], spacing, grouping
        )
        core[members] = is_core
        if local.max() > 0:  # piece 0 keeps the component's number, the others get new ones
            piece[members] = np.where(local == 0, k, pieces + local - 1)
            pieces += int(local.max())
    group = _merge_fragments(piece, pieces, component, core, weight, points, spacing, grouping.merge_mm)
    kept_core = core & (piece == group)  # a merged group keeps the centre of its strongest piece
    return _measure(group, kept_core, weight, points, offset_irc, spacing, grouping.min_diameter_mm)


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
    at = tuple(points.T)
    strength = score[at]
    peaks = (strength > 0) & (strength >= ndimage.maximum_filter(score, size=tuple(window), mode="constant")[at])
    seeds, strength, radius = points[peaks], strength[peaks], point_depth[peaks]  # raster order, as ``points``
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


def _depth_mm(points: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each of ``points`` to the nearest voxel not among them: a sparse exact EDT.

    The squared Euclidean distance transform is separable: along each axis in
    turn, ``g(x) = min_k f(x + k·e) + (s·k)²`` with ``f = 0`` outside the set.
    Offsets grow one voxel at a time and a voxel stops as soon as ``(s·k)²``
    reaches its current ``g`` (nothing further can be closer, and the first
    outside voxel on a line is met before any voxel behind it), so the work
    follows each voxel's depth, not a box: the components of a vessel tree span
    most of a lung but fill little of it. Where several outside voxels are
    equally near, every voxel of the same depth gets the same value (a k-d tree
    over the outer shell, used before, gave the same distances up to their last
    bit). Components touch no other by a face, so the depth within the union of
    several components is each one's own depth.

    Args:
        points: ``(V, 3)`` distinct voxel indices.
        spacing: ``(3,)`` voxel size, mm.
    """
    count = len(points)
    extent = points.max(axis=0).astype(np.int64) + 2  # a line's coordinate - 1 never reads as the last of another
    f = np.full(count, np.inf)
    for axis in range(3):
        u, v = (a for a in range(3) if a != axis)
        key = (points[:, u].astype(np.int64) * extent[v] + points[:, v]) * extent[axis] + points[:, axis]
        order = np.argsort(key, kind="stable")  # the set's voxels line by line along ``axis``
        key, before = key[order], f[order]
        g = before.copy()
        active = np.arange(count)
        k = 1
        while active.size:
            step = (spacing[axis] * k) ** 2
            active = active[g[active] > step]
            if not active.size:
                break
            for sign in (1, -1):
                # an active voxel has its k - 1 neighbours on both sides in the set, so the k-th, when in the
                # set, is k places away in this order
                other = np.clip(active + sign * k, 0, count - 1)
                inside = key[other] == key[active] + sign * k
                g[active] = np.minimum(g[active], np.where(inside, before[other], 0.0) + step)
            k += 1
        f = np.empty(count)
        f[order] = g
    return np.sqrt(f)


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
    """The merged group of each voxel: pieces of different components that are one lesion join.

    Two pieces of different components are one lesion when their centres are
    closer than ``max(merge_mm, r_a, r_b)`` (``r``: how far a piece reaches from
    its centre), or when one is a fragment of the other: at most half its
    equivalent diameter (an eighth of its voxels) with its centre within the
    larger one's equivalent radius plus ``merge_mm`` (a speck the segmentation
    cut off a nodule's edge lies just outside the nodule's reach). A piece as
    large as a nodule is never absorbed this way by a vessel piece beside it.

    Returns:
        ``(V,)`` int64 group number of each voxel (a piece number: that of the piece kept).
    """
    mass, center = _cores(piece, pieces, core, weight, points)
    xyz = center * spacing
    offsets = np.linalg.norm(points * spacing - xyz[piece], axis=1)
    by_piece = np.argsort(piece, kind="stable")
    firsts = np.searchsorted(piece[by_piece], np.arange(pieces))
    radius = np.maximum.reduceat(offsets[by_piece], firsts)  # how far each piece reaches from its centre, mm
    voxels = np.bincount(piece, minlength=pieces)
    equivalent = np.cbrt(3.0 * voxels * float(np.prod(spacing)) / (4.0 * np.pi))  # radius of the same volume, mm
    owner = np.zeros(pieces, dtype=np.int64)
    owner[piece] = component
    reach = np.maximum(np.maximum(merge_mm, radius), equivalent + merge_mm)
    # either rule holds only within the larger reach of the pair: every pair is found from that side
    found = cKDTree(xyz).query_ball_point(xyz, r=reach * (1 + 1e-9))
    sizes = np.fromiter((len(f) for f in found), dtype=np.int64, count=pieces)
    first = np.repeat(np.arange(pieces), sizes)
    second = np.concatenate([np.asarray(f, dtype=np.int64) for f in found]) if pieces else np.zeros(0, np.int64)
    a, b = np.concatenate([first, second]), np.concatenate([second, first])
    other = owner[a] != owner[b]  # pieces of one component were separated on purpose
    a, b = a[other], b[other]
    gap = np.linalg.norm(xyz[a] - xyz[b], axis=1)
    close = gap < np.maximum(merge_mm, np.maximum(radius[a], radius[b]))
    big, small = np.where(voxels[a] >= voxels[b], a, b), np.where(voxels[a] >= voxels[b], b, a)
    fragment = (8 * voxels[small] <= voxels[big]) & (gap < equivalent[big] + merge_mm)
    a, b = a[close | fragment], b[close | fragment]
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
    by_group = np.argsort(dense, kind="stable")
    bounds = np.searchsorted(dense[by_group], np.arange(n))  # every group has voxels
    lo = np.minimum.reduceat(points[by_group], bounds, axis=0).astype(np.int64).reshape(-1, 3)
    hi = np.maximum.reduceat(points[by_group], bounds, axis=0).astype(np.int64).reshape(-1, 3) + 1
    diameter = np.cbrt(6.0 * counts * float(np.prod(spacing)) / np.pi)
    keep = np.argsort(first, kind="stable")  # flat is in raster order: the first voxel orders the groups
    keep = keep[diameter[keep] >= min_diameter_mm]
    offset = np.asarray(offset_irc, dtype=np.int64)
    return Components(center[keep] + offset, counts[keep], lo[keep] + offset, hi[keep] + offset)
