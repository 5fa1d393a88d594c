"""Pulmonary vessel trees grown from each hilum into the lung they supply.

Each tree is grown by recursive territory splitting: points sampled uniformly
in the lung are the tissue to supply. A branch heads from its start towards
the centre of its territory, stops part of the way, and the territory is cut
in two across its longest axis (at a random quantile, so branching is
asymmetric); each half gets a child branch. Child radii follow Murray's law
with flow proportional to territory size, ``r_child = r * (n_child / n)^(1/3)``,
so ``r_parent^3 = sum r_child^3``, from ~7 mm at the hilum down to the
sub-millimetre vessels near the pleura. Straight branches are drawn as
slightly bent curves (quadratic Bézier), so vessels curve like real ones.

Every lung gets an arterial tree (from the pulmonary artery at the hilum) and
a venous tree (to the pulmonary veins, lower down), grown on independent
territory samples so that they interleave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.lungspace import sample_points
from engine.phantom.thorax import Thorax
from engine.phantom.tubes import TubeSet


@dataclass(frozen=True)
class VesselTree:
    """One vessel tree.

    Args:
        side: Lung side (1 right, 2 left).
        kind: ``"artery"`` or ``"vein"``.
        tubes: The drawn (curved, subdivided) segments, patient-frame mm.
        tube_generation: ``int16 (len(tubes),)`` branching generation of each drawn segment (0 = root).
        branch_start, branch_end: ``(k, 3)`` straight branch ends (mm).
        branch_radius: ``(k,)`` radius of each branch (mm).
        branch_generation: ``(k,)`` generation of each branch.
        branch_parent: ``(k,)`` index of the parent branch, -1 for the root.
    """

    side: int
    kind: str
    tubes: TubeSet
    tube_generation: np.ndarray
    branch_start: np.ndarray
    branch_end: np.ndarray
    branch_radius: np.ndarray
    branch_generation: np.ndarray
    branch_parent: np.ndarray

    @property
    def bifurcations(self) -> np.ndarray:
        """``(m, 3)`` points where a branch splits into children."""
        parents = np.unique(self.branch_parent[self.branch_parent >= 0])
        return self.branch_end[parents]

    @property
    def bifurcation_radius(self) -> np.ndarray:
        """``(m,)`` radius of the parent branch at each bifurcation."""
        parents = np.unique(self.branch_parent[self.branch_parent >= 0])
        return self.branch_radius[parents]


def grow_tree(
    thorax: Thorax,
    rng: np.random.Generator,
    side: int,
    kind: str,
    root: np.ndarray,
    root_radius: float,
    n_points: int,
) -> VesselTree:
    """Grow one vessel tree into lung ``side``.

    All branches of one generation are grown together (vectorised over
    branches and territory points), so a tree of a few thousand branches takes
    milliseconds.

    Args:
        thorax: The anatomy.
        rng: Random stream.
        side: Lung side (1 right, 2 left).
        kind: ``"artery"`` or ``"vein"`` (stored only).
        root: ``(3,)`` start of the tree at the hilum (mm).
        root_radius: Radius of the root branch (mm).
        n_points: Territory points; the smallest branches have radius about
            ``root_radius * n_points^(-1/3)``.

    Returns:
        The tree.
    """
    points = sample_points(thorax, rng, side, n_points, margin=2.5)
    # active branches of the current generation
    start = np.asarray(root, dtype=np.float64)[None, :]
    radius = np.array([root_radius])
    parent = np.array([-1], dtype=np.int64)
    owner = np.zeros(n_points, dtype=np.int64)  # active branch of each territory point, -1 when done
    out_start, out_end, out_r0, out_r1, out_gen, out_parent = [], [], [], [], [], []
    n_done = 0
    gen = 0
    while start.shape[0]:
        m = start.shape[0]
        live = owner >= 0
        own = owner[live]
        pts = points[live]
        count = np.bincount(own, minlength=m).astype(np.float64)
        center = np.stack([np.bincount(own, pts[:, i], minlength=m) for i in range(3)], axis=1) / count[:, None]
        leaf = count <= 1
        reach = center - start
        frac = rng.uniform(0.35, 0.6, size=m) if gen else rng.uniform(0.28, 0.42, size=m)
        step = reach * frac[:, None]
        length = np.linalg.norm(step, axis=1)
        max_len = 6.0 + 7.0 * radius
        step *= np.minimum(1.0, max_len / np.maximum(length, 1e-9))[:, None]
        # a terminal branch runs through its last territory point and on towards the pleura
        unit = reach / np.maximum(np.linalg.norm(reach, axis=1, keepdims=True), 1e-9)
        twig = center + unit * rng.uniform(2.0, 7.0, size=(m, 1))
        end = np.where(leaf[:, None], twig, start + step)
        ids = n_done + np.arange(m)
        out_start.append(start)
        out_end.append(end)
        out_r0.append(radius)
        out_r1.append(np.where(leaf, 0.45 * radius, radius))
        out_gen.append(np.full(m, gen, dtype=np.int16))
        out_parent.append(parent)
        n_done += m
        # split every non-leaf territory across its longest axis at a random quantile
        rel = pts - center[own]
        cov = np.zeros((m, 3, 3))
        for i in range(3):
            for j in range(i, 3):
                cov[:, i, j] = cov[:, j, i] = np.bincount(own, rel[:, i] * rel[:, j], minlength=m)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        proj = (rel * axis[own]).sum(axis=1)
        order = np.lexsort((proj, own))
        first = np.concatenate([[0], np.cumsum(count.astype(np.int64))[:-1]])
        rank = np.empty(own.size, dtype=np.int64)
        rank[order] = np.arange(own.size) - first[own[order]]
        cut = np.clip(np.round(rng.uniform(0.3, 0.7, size=m) * count), 1, np.maximum(count - 1, 1)).astype(np.int64)
        child = (rank >= cut[own]).astype(np.int64)
        new_owner = np.where(leaf[own], -1, 2 * own + child)
        kept, new_index = np.unique(new_owner[new_owner >= 0], return_inverse=True)
        sizes = np.bincount(new_index, minlength=kept.size).astype(np.float64)
        src = kept // 2
        owner_live = np.full(own.size, -1, dtype=np.int64)
        owner_live[new_owner >= 0] = new_index
        owner[live] = owner_live
        start = end[src]
        radius = radius[src] * (sizes / count[src]) ** (1.0 / 3.0)
        parent = ids[src]
        gen += 1
    branch_start = np.concatenate(out_start)
    branch_end = np.concatenate(out_end)
    r0 = np.concatenate(out_r0)
    r1 = np.concatenate(out_r1)
    branch_gen = np.concatenate(out_gen)
    tubes, tube_gen = _bend(branch_start, branch_end, r0, r1, branch_gen, rng)
    return VesselTree(side, kind, tubes, tube_gen, branch_start, branch_end, r0, branch_gen,
                      np.concatenate(out_parent).astype(np.int32))


def _bend(start: np.ndarray, end: np.ndarray, r0: np.ndarray, r1: np.ndarray, gen: np.ndarray,
          rng: np.random.Generator) -> tuple[TubeSet, np.ndarray]:
    """Draw each straight branch as a gently bent quadratic Bézier of a few segments."""
    vec = end - start
    length = np.linalg.norm(vec, axis=1)
    # a random direction perpendicular to the branch
    rnd = rng.normal(size=vec.shape)
    unit = vec / np.maximum(length, 1e-9)[:, None]
    perp = rnd - (rnd * unit).sum(axis=1, keepdims=True) * unit
    perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
    bow = rng.uniform(0.0, 0.16, size=length.shape) * length
    control = 0.5 * (start + end) + perp * bow[:, None]
    pieces = np.clip(np.ceil(length / 5.0), 1, 4).astype(int)
    p0s, p1s, q0s, q1s, gs = [], [], [], [], []
    for k in np.unique(pieces):
        sel = np.flatnonzero(pieces == k)
        t = np.linspace(0.0, 1.0, k + 1)[None, :, None]
        a, c, b = start[sel, None, :], control[sel, None, :], end[sel, None, :]
        curve = (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t**2 * b
        rad = r0[sel, None] + (r1[sel] - r0[sel])[:, None] * t[..., 0]
        p0s.append(curve[:, :-1].reshape(-1, 3))
        p1s.append(curve[:, 1:].reshape(-1, 3))
        q0s.append(rad[:, :-1].ravel())
        q1s.append(rad[:, 1:].ravel())
        gs.append(np.repeat(gen[sel], k))
    tubes = TubeSet(np.concatenate(p0s), np.concatenate(p1s), np.concatenate(q0s), np.concatenate(q1s))
    return tubes, np.concatenate(gs).astype(np.int16)


def grow_lung_vessels(thorax: Thorax, rng: np.random.Generator, n_points: int) -> list[VesselTree]:
    """Arterial and venous trees of both lungs.

    Args:
        thorax: The anatomy (hilum positions).
        rng: Random stream.
        n_points: Territory points per tree.

    Returns:
        Four trees: right artery, left artery, right vein, left vein.
    """
    trees = []
    for kind, roots, radius in (("artery", thorax.hilum, 7.2), ("vein", thorax.vein_hilum, 6.4)):
        for side in sorted(roots):
            r = radius * rng.uniform(0.92, 1.08)
            trees.append(grow_tree(thorax, rng, side, kind, roots[side], r, n_points))
    return trees
