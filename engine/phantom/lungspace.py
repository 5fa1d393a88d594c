"""Point queries in the lungs: uniform samples, depth below the pleura, pleural surface points.

The vessel trees grow towards points sampled in each lung, nodules are placed
at chosen depths below the pleura, and candidates are drawn on the pleural
surface; all of it works on the analytic anatomy, without voxels.
"""

from __future__ import annotations

import functools

import numpy as np

from engine.phantom.thorax import RIGHT, Thorax


@functools.cache
def _directions() -> np.ndarray:
    """48 nearly uniform unit directions (a Fibonacci sphere), ``(48, 3)``."""
    n = 48
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def lung_bounds(thorax: Thorax, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A box (low, high xyz, mm) holding lung ``side``."""
    a = thorax.cavity_half_width + 12.0
    p = thorax.p
    x = (-a, 0.0) if side == RIGHT else (0.0, a)
    low = np.array([x[0], -p.body_b_ant, -p.recess_depth - 2.0])
    high = np.array([x[1], p.body_b_post, thorax.apex_z[side] + 2.0])
    return low, high


def side_of(thorax: Thorax, points: np.ndarray) -> np.ndarray:
    """Lung side (0 none, 1 right, 2 left) of ``(n, 3)`` points."""
    points = np.asarray(points, dtype=np.float64)
    return thorax.lung_side(points[:, 0], points[:, 1], points[:, 2])


def sample_points(thorax: Thorax, rng: np.random.Generator, side: int, n: int, margin: float = 0.0) -> np.ndarray:
    """``n`` points uniformly distributed in lung ``side``, at least ``margin`` mm inside it.

    Returns:
        ``float64 (n, 3)`` patient-frame mm.
    """
    low, high = lung_bounds(thorax, side)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = rng.uniform(low, high, size=(max(4 * (n - have), 256), 3))
        ok = side_of(thorax, cand) == side
        if margin > 0:
            for d in np.concatenate([np.eye(3), -np.eye(3)]):
                ok &= side_of(thorax, cand + margin * d) == side
        cand = cand[ok]
        out.append(cand)
        have += cand.shape[0]
    return np.concatenate(out)[:n]


def depth_below_pleura(thorax: Thorax, points: np.ndarray, side: int, max_depth: float = 40.0,
                       step: float = 0.5) -> np.ndarray:
    """Distance (mm) from each point to the surface of its lung, capped at ``max_depth``.

    Rays in 48 directions are marched in ``step`` mm steps; the depth is the
    shortest distance at which a ray leaves lung ``side``. Points outside the
    lung get 0.

    Args:
        thorax: The anatomy.
        points: ``(n, 3)`` patient-frame mm.
        side: The lung the points should be in.
        max_depth: Cap of the search (mm).
        step: March step (mm).
    """
    points = np.asarray(points, dtype=np.float64)
    dirs = _directions()
    steps = np.arange(step, max_depth + step, step)
    depth = np.full(points.shape[0], max_depth)
    inside = side_of(thorax, points) == side
    depth[~inside] = 0.0
    todo = np.flatnonzero(inside)
    for s in steps:
        if todo.size == 0:
            break
        probe = points[todo, None, :] + s * dirs[None, :, :]
        out = side_of(thorax, probe.reshape(-1, 3)).reshape(todo.size, dirs.shape[0]) != side
        hit = out.any(axis=1)
        depth[todo[hit]] = s - 0.5 * step
        todo = todo[~hit]
    return depth


def pleural_points(thorax: Thorax, rng: np.random.Generator, side: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on the surface of lung ``side`` and the inward direction there.

    Points are found by marching from random interior points along random
    directions to the first exit (3 mm steps, then bisection to 0.1 mm; a
    surface fold thinner than 3 mm may be stepped over).

    Returns:
        ``(surface (n, 3), inward (n, 3))``: surface points (mm, within 0.1 mm of
        the pleura, inside) and unit vectors pointing back into the lung.
    """
    start = sample_points(thorax, rng, side, n, margin=3.0)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    # coarse march to the first point outside, then bisection to ~0.1 mm
    step = 3.0
    inside_t = np.zeros(n)
    outside_t = np.full(n, np.inf)
    for s in np.arange(step, 300.0, step):
        todo = np.flatnonzero(np.isinf(outside_t))
        if todo.size == 0:
            break
        out = side_of(thorax, start[todo] + s * v[todo]) != side
        outside_t[todo[out]] = s
        inside_t[todo[~out]] = s
    outside_t = np.where(np.isinf(outside_t), inside_t + step, outside_t)
    for _ in range(5):
        mid = 0.5 * (inside_t + outside_t)
        out = side_of(thorax, start + mid[:, None] * v) != side
        outside_t = np.where(out, mid, outside_t)
        inside_t = np.where(out, inside_t, mid)
    t = inside_t
    surface = start + t[:, None] * v
    return surface, -v

