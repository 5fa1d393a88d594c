"""Tapered tubes (capsule segments) and their partial-volume rasterisation.

Vessels, airways, ribs and cartilages are chains of segments, each a capsule
whose radius changes linearly from ``r0`` at ``p0`` to ``r1`` at ``p1``.
:func:`rasterize` turns a set of segments into the fraction of each voxel they
cover, vectorised over segments grouped by the size of their bounding boxes
(no loop over voxels or segments in Python).

Partial volume: at distance ``d`` from the axis, a voxel is covered by
``clip((r - d) / w + 1/2, 0, 1)``, where ``w = |n_x| s_x + |n_y| s_y + |n_z| s_z`` is
the voxel's width along the surface normal ``n`` — the exact fraction for a
planar surface crossing a box voxel. Tubes thinner than a voxel are dimmed by
``2r / w`` so that a 0.3 mm vessel is a faint dot, not a bright one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.config import Frame

#: Box edge lengths (voxels) that segment boxes are rounded up to, so segments batch together.
_LADDER = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112,
                    128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024])
#: Voxels evaluated per batch (bounds temporary memory to a few hundred MB).
_BATCH_VOXELS = 1_500_000


@dataclass(frozen=True)
class TubeSet:
    """Capsule segments in patient-frame mm.

    Args:
        p0, p1: ``float64 (n, 3)`` segment ends (x, y, z).
        r0, r1: ``float64 (n,)`` radii (mm) at ``p0`` and ``p1``.
    """

    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray

    def __len__(self) -> int:
        return int(self.p0.shape[0])

    @classmethod
    def empty(cls) -> "TubeSet":
        """No segments."""
        z3 = np.zeros((0, 3))
        return cls(z3, z3.copy(), np.zeros(0), np.zeros(0))

    @classmethod
    def polyline(cls, points: np.ndarray, radii: np.ndarray) -> "TubeSet":
        """Segments joining consecutive ``points (m, 3)`` with radii ``(m,)`` at the points."""
        points = np.asarray(points, dtype=np.float64)
        radii = np.asarray(radii, dtype=np.float64)
        return cls(points[:-1].copy(), points[1:].copy(), radii[:-1].copy(), radii[1:].copy())

    @classmethod
    def concat(cls, sets: list["TubeSet"]) -> "TubeSet":
        """All segments of several sets."""
        sets = [s for s in sets if len(s)]
        if not sets:
            return cls.empty()
        return cls(
            np.concatenate([s.p0 for s in sets]),
            np.concatenate([s.p1 for s in sets]),
            np.concatenate([s.r0 for s in sets]),
            np.concatenate([s.r1 for s in sets]),
        )

    def select(self, mask: np.ndarray) -> "TubeSet":
        """The segments where ``mask`` is True."""
        return TubeSet(self.p0[mask], self.p1[mask], self.r0[mask], self.r1[mask])

    def scaled(self, factor: float, add: float = 0.0) -> "TubeSet":
        """The same axes with radii ``r * factor + add`` (negative radii become 0)."""
        return TubeSet(self.p0, self.p1, np.maximum(self.r0 * factor + add, 0.0), np.maximum(self.r1 * factor + add, 0.0))

    @property
    def midpoints(self) -> np.ndarray:
        """``(n, 3)`` segment centres."""
        return 0.5 * (self.p0 + self.p1)

    @property
    def lengths(self) -> np.ndarray:
        """``(n,)`` segment lengths (mm)."""
        return np.linalg.norm(self.p1 - self.p0, axis=1)


def point_segment_distance(points: np.ndarray, tubes: TubeSet) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to the axis of each segment.

    Args:
        points: ``(m, 3)`` mm.
        tubes: ``n`` segments.

    Returns:
        ``(distance (m, n), radius_at_closest (m, n))`` in mm.
    """
    pts = np.asarray(points, dtype=np.float64)[:, None, :]
    ab = tubes.p1 - tubes.p0
    l2 = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((pts - tubes.p0) * ab).sum(axis=2) / l2, 0.0, 1.0)
    closest = tubes.p0 + t[..., None] * ab
    d = np.linalg.norm(pts - closest, axis=2)
    return d, tubes.r0 + t * (tubes.r1 - tubes.r0)


def capsule_coverage(pos: tuple[np.ndarray, np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray,
                     r0: np.ndarray, r1: np.ndarray, spacing: np.ndarray, soft: float = 0.0) -> np.ndarray:
    """Fraction of voxels covered by capsules.

    Args:
        pos: Three ``float32 (n, k)`` arrays, the voxel centres' coordinates (mm)
            along the three axes (any fixed axis order).
        a, b: ``(n, 3)`` capsule ends in the same frame; r0, r1: ``(n,)`` radii.
        spacing: ``(3,)`` voxel size (mm) in the same axis order.
        soft: Extra edge width (mm), for fuzzy margins.

    Returns:
        ``float32 (n, k)`` coverage in [0, 1].
    """
    a = a.astype(np.float32)
    ab = (b - a).astype(np.float32)
    inv_l2 = (1.0 / np.maximum((ab * ab).sum(axis=1), 1e-9)).astype(np.float32)
    rel = [pos[i] - a[:, i : i + 1] for i in range(3)]
    t = rel[0] * ab[:, 0:1]
    t += rel[1] * ab[:, 1:2]
    t += rel[2] * ab[:, 2:3]
    t *= inv_l2[:, None]
    np.clip(t, 0.0, 1.0, out=t)
    d2 = np.zeros_like(t)
    w = np.zeros_like(t)
    for i in range(3):
        diff = rel[i]
        diff -= t * ab[:, i : i + 1]
        np.abs(diff, out=diff)
        w += diff * np.float32(spacing[i])
        diff *= diff
        d2 += diff
    d = np.sqrt(d2, out=d2)
    r = t
    r *= (r1 - r0).astype(np.float32)[:, None]
    r += r0.astype(np.float32)[:, None]
    # w = |n|_1-weighted voxel width along the normal; on the axis itself use the mean spacing
    w /= np.maximum(d, np.float32(1e-6))
    np.copyto(w, np.float32(spacing.mean()), where=d < 1e-3)
    if soft:
        w += np.float32(soft)
    np.divide(1.0, w, out=w)
    cover = r - d
    cover *= w
    cover += 0.5
    np.clip(cover, 0.0, 1.0, out=cover)
    r *= 2.0
    r *= w
    np.clip(r, 0.0, 1.0, out=r)
    cover *= r
    return cover


def rasterize(tubes: TubeSet, frame: Frame, scratch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel coverage of a tube set on the frame's canonical grid.

    Args:
        tubes: Segments in patient-frame mm.
        frame: The grid (canonical orientation).
        scratch: ``uint8`` zero-filled flat array of the grid's voxel count,
            used as working memory and left zero-filled.

    Returns:
        ``(flat_index int64 (m,), coverage float32 (m,))`` for every voxel the
        tubes touch, coverage in (0, 1] (the maximum over overlapping segments),
        indices into the C-ordered ``(z, y, x)`` canonical grid. An index may
        repeat (where segments overlap); every repeat carries the same coverage.
    """
    if len(tubes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    shape = np.array(frame.shape_irc)
    spacing = np.array(frame.spacing_xyz[::-1], dtype=np.float64)
    a = frame.patient_to_grid_mm(tubes.p0)
    b = frame.patient_to_grid_mm(tubes.p1)
    # coverage vanishes beyond r + |spacing| / 2 from the axis
    rmax = np.maximum(tubes.r0, tubes.r1)[:, None] + 0.5 * float(np.linalg.norm(spacing))
    # voxel centres i * spacing inside [min - rmax, max + rmax]
    lo = np.ceil((np.minimum(a, b) - rmax) / spacing).astype(np.int64)
    hi = np.floor((np.maximum(a, b) + rmax) / spacing).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, shape - 1)
    keep = np.all(hi >= lo, axis=1) & (np.maximum(tubes.r0, tubes.r1) > 0)
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    a, b, lo, hi = a[keep], b[keep], lo[keep], hi[keep]
    r0, r1 = tubes.r0[keep], tubes.r1[keep]
    dims = hi - lo + 1
    rung = np.searchsorted(_LADDER, dims)
    rung = np.minimum(rung, len(_LADDER) - 1)
    keys, group = np.unique(rung, axis=0, return_inverse=True)
    group = group.ravel()
    ny, nx = int(shape[1]), int(shape[2])
    spacing32 = spacing.astype(np.float32)
    touched: list[np.ndarray] = []
    for g, key in enumerate(keys):
        box = _LADDER[key]
        offsets = np.indices(tuple(int(v) for v in box)).reshape(3, -1).astype(np.int32)
        members = np.flatnonzero(group == g)
        per_batch = max(1, _BATCH_VOXELS // offsets.shape[1])
        for start in range(0, members.size, per_batch):
            sel = members[start : start + per_batch]
            coords = [lo[sel, i : i + 1].astype(np.int32) + offsets[i][None, :] for i in range(3)]
            valid = coords[0] <= hi[sel, 0:1]
            valid &= coords[1] <= hi[sel, 1:2]
            valid &= coords[2] <= hi[sel, 2:3]
            pos = tuple(coords[i].astype(np.float32) * spacing32[i] for i in range(3))
            cover = capsule_coverage(pos, a[sel], b[sel], r0[sel], r1[sel], spacing)
            valid &= cover >= 0.5 / 255.0
            hit = np.flatnonzero(valid)
            if hit.size == 0:
                continue
            flat = (coords[0].ravel()[hit].astype(np.int64) * ny + coords[1].ravel()[hit]) * nx + coords[2].ravel()[hit]
            np.maximum.at(scratch, flat, np.round(cover.ravel()[hit] * 255.0).astype(np.uint8))
            touched.append(flat)
    if not touched:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.concatenate(touched)
    cover = scratch[idx].astype(np.float32) / np.float32(255.0)
    scratch[idx] = 0
    return idx, cover
