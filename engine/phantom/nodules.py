"""Nodules: their geometry (shape, solidity, margin) and how they are drawn into the volume.

A nodule is a union of balls — one for a round nodule, a central ball and
3–5 overlapping lobes for a lobulated one, scaled so that its volume equals
the sphere of its nominal diameter — plus, when spiculated, 6–14 thin
tapering spicules radiating from the surface. Solid nodules are soft-tissue
dense (-50..+60 HU, calcified ones have a dense core), ground-glass ones faint
(-700..-350 HU, heterogeneous, vessels stay visible through them), part-solid
ones a ground-glass halo around a solid core. The margin is the scanner's
partial volume for solid nodules and ~1 mm fuzzier for ground glass.

Nodules are drawn only into lung (and vessel) voxels, so a juxtapleural
nodule is flattened against the chest wall as real ones are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from engine.phantom.config import Frame
from engine.phantom.tubes import TubeSet, capsule_coverage


@dataclass(frozen=True)
class NoduleBody:
    """The geometry and density of one nodule (patient-frame mm).

    Args:
        center: ``(3,)`` centre.
        diameter_mm: Nominal diameter (the volume-equivalent sphere of the balls).
        balls: ``(k, 4)`` rows ``(dx, dy, dz, radius)`` relative to the centre.
        spicules: Thin tubes relative to the centre (empty unless spiculated).
        kind: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        hu_solid: HU of the solid part (solid nodules, part-solid cores).
        hu_ggo: HU of ground glass (ground-glass nodules, part-solid halos).
        core_fraction: Radius of a part-solid nodule's solid core over the nodule radius.
        calcified_fraction: Radius of a dense calcified core over the radius (0: none).
        hu_calcium: HU of that core.
        texture_seed: Seed of the internal texture.
    """

    center: np.ndarray
    diameter_mm: float
    balls: np.ndarray
    spicules: TubeSet
    kind: str
    hu_solid: float
    hu_ggo: float
    core_fraction: float
    calcified_fraction: float
    hu_calcium: float
    texture_seed: int

    @property
    def extent(self) -> np.ndarray:
        """``(3,)`` half extent (mm) of the balls along x, y, z (spicules excluded)."""
        return np.max(np.abs(self.balls[:, :3]) + self.balls[:, 3:4], axis=0)

    @property
    def reach(self) -> float:
        """Largest distance (mm) from the centre reached by any part, spicules included."""
        r = float(np.max(np.linalg.norm(self.balls[:, :3], axis=1) + self.balls[:, 3]))
        if len(self.spicules):
            r = max(r, float(np.max(np.linalg.norm(self.spicules.p1, axis=1) + self.spicules.r1)))
        return r


def _volume_fraction(balls: np.ndarray, radius: float, rng: np.random.Generator) -> float:
    """Volume of a union of balls over the volume of a sphere of ``radius`` (Monte Carlo)."""
    box = float(np.max(np.abs(balls[:, :3]) + balls[:, 3:4]))
    pts = rng.uniform(-box, box, size=(6000, 3))
    inside = np.zeros(pts.shape[0], dtype=bool)
    for x, y, z, r in balls:
        inside |= ((pts - (x, y, z)) ** 2).sum(axis=1) < r * r
    volume = inside.mean() * (2 * box) ** 3
    return volume / (4.0 / 3.0 * np.pi * radius**3)


def make_body(
    center: np.ndarray, diameter: float, kind: str, shape: str, calcified: bool, rng: np.random.Generator
) -> NoduleBody:
    """Draw the geometry and density of a nodule with the given look.

    Args:
        center: ``(3,)`` centre (mm).
        diameter: Nominal diameter (mm).
        kind, shape: Solidity and margin (see :mod:`engine.phantom.distributions`).
        calcified: Whether it has a dense calcified core.
        rng: Random stream.
    """
    radius = diameter / 2.0
    if shape == "spherical":
        # a round ball with a few low bumps: real "smooth" nodules are not perfect spheres
        n_bumps = int(rng.integers(4, 8))
        dirs = rng.normal(size=(n_bumps, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        bumps = np.column_stack([dirs * rng.uniform(0.55, 0.65, size=(n_bumps, 1)) * radius,
                                 rng.uniform(0.38, 0.46, size=n_bumps) * radius])
        balls = np.concatenate([[[0.0, 0.0, 0.0, radius]], bumps])
    else:
        n_lobes = int(rng.integers(3, 6)) if shape == "lobulated" else int(rng.integers(2, 5))
        dirs = rng.normal(size=(n_lobes, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        dist = rng.uniform(0.42, 0.6, size=n_lobes) * radius
        lobe_r = rng.uniform(0.45, 0.62, size=n_lobes) * radius
        balls = np.concatenate([[[0.0, 0.0, 0.0, 0.82 * radius]], np.column_stack([dirs * dist[:, None], lobe_r])])
    scale = _volume_fraction(balls, radius, rng) ** (-1.0 / 3.0)
    balls = balls * scale
    spicules = TubeSet.empty()
    if shape == "spiculated":
        n = int(rng.integers(12, 25))
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        length = rng.uniform(0.4, 1.3, size=n) * radius + rng.uniform(3.0, 9.0, size=n)
        base = np.clip(0.08 * radius + 0.6, 0.7, 1.6) * rng.uniform(0.75, 1.3, size=n)
        # spicules bend a little: two segments per spicule, thick at the base
        bend = rng.normal(size=(n, 3)) * (0.15 * length)[:, None]
        start = dirs * 0.8 * radius
        mid = dirs * (radius + 0.45 * length)[:, None] + 0.5 * bend
        tip = dirs * (radius + length)[:, None] + bend
        spicules = TubeSet(np.concatenate([start, mid]), np.concatenate([mid, tip]),
                           np.concatenate([base, 0.7 * base]), np.concatenate([0.7 * base, np.full(n, 0.3)]))
    if kind == "solid":
        hu_solid, hu_ggo, core = rng.uniform(-40.0, 55.0), 0.0, 1.0
    elif kind == "part-solid":
        hu_solid, hu_ggo, core = rng.uniform(-60.0, 40.0), rng.uniform(-650.0, -420.0), rng.uniform(0.35, 0.6)
    else:
        hu_solid, hu_ggo, core = 0.0, rng.uniform(-700.0, -380.0), 0.0
    calc_fraction = float(rng.uniform(0.35, 0.8)) if calcified else 0.0
    return NoduleBody(
        center=np.asarray(center, dtype=np.float64),
        diameter_mm=float(diameter),
        balls=balls,
        spicules=spicules,
        kind=kind,
        hu_solid=float(hu_solid),
        hu_ggo=float(hu_ggo),
        core_fraction=float(core),
        calcified_fraction=calc_fraction,
        hu_calcium=float(rng.uniform(250.0, 800.0)),
        texture_seed=int(rng.integers(2**31)),
    )


def render_body(body: NoduleBody, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage and HU of a nodule on the canonical grid.

    Args:
        body: The nodule.
        frame: The canonical grid.

    Returns:
        ``(flat_index int64 (m,), coverage float32 (m,), hu float32 (m,))`` for
        the voxels it touches (empty when it lies outside the grid).
    """
    spacing = np.array(frame.spacing_xyz[::-1], dtype=np.float64)
    shape = np.array(frame.shape_irc)
    center = frame.patient_to_grid_mm(body.center)
    reach = body.reach + 1.5 + float(np.linalg.norm(spacing))
    lo = np.maximum(np.floor((center - reach) / spacing).astype(np.int64), 0)
    hi = np.minimum(np.ceil((center + reach) / spacing).astype(np.int64), shape - 1)
    if np.any(hi < lo):
        empty = np.zeros(0)
        return empty.astype(np.int64), empty.astype(np.float32), empty.astype(np.float32)
    grids = np.meshgrid(*[np.arange(lo[i], hi[i] + 1) for i in range(3)], indexing="ij")
    box_shape = grids[0].shape
    pos = tuple((g.ravel()[None, :] * spacing[i]).astype(np.float32) for i, g in enumerate(grids))

    def to_grid(rel: np.ndarray) -> np.ndarray:
        return frame.patient_to_grid_mm(body.center + rel)

    ggo = body.kind == "ground-glass"
    soft = 0.9 if ggo else 0.0
    ball_centers = to_grid(body.balls[:, :3])
    r = body.balls[:, 3]
    cover = capsule_coverage(pos, ball_centers, ball_centers, r, r, spacing, soft=soft).max(axis=0)
    if len(body.spicules):
        a, b = to_grid(body.spicules.p0), to_grid(body.spicules.p1)
        spic = capsule_coverage(pos, a, b, body.spicules.r0, body.spicules.r1, spacing, soft=soft * 0.5).max(axis=0)
        cover = np.maximum(cover, spic)
    rng = np.random.default_rng(body.texture_seed)
    texture = gaussian_filter(rng.standard_normal(box_shape).astype(np.float32), 1.2).ravel()
    texture /= max(float(texture.std()), 1e-6)
    radius = body.diameter_mm / 2.0
    c = center[None, :].astype(np.float64)
    if body.kind == "solid":
        value = body.hu_solid + 12.0 * texture
    else:
        value = body.hu_ggo + 45.0 * texture
        if body.kind == "part-solid":
            core_r = np.array([body.core_fraction * radius])
            core = capsule_coverage(pos, c, c, core_r, core_r, spacing)[0]
            value = value + (body.hu_solid - value) * core
    if body.calcified_fraction > 0:
        calc_r = np.array([body.calcified_fraction * radius])
        calc = capsule_coverage(pos, c, c, calc_r, calc_r, spacing)[0]
        value = value + (body.hu_calcium - value) * calc
    keep = cover >= 0.5 / 255.0
    flat = (grids[0].ravel()[keep] * shape[1] + grids[1].ravel()[keep]) * shape[2] + grids[2].ravel()[keep]
    return flat.astype(np.int64), cover[keep].astype(np.float32), value[keep].astype(np.float32)
