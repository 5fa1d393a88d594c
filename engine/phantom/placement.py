"""Where nodules go: free in the parenchyma, against the pleura, or touching a vessel.

* parenchyma — a point at least one radius + 4 mm below the pleura, clear of
  vessels of radius ≥ 1.2 mm;
* juxtapleural — centre 0.3–0.85 radii below the lung surface, so the nodule
  abuts the chest wall or the diaphragm (and is flattened there);
* juxtavascular — centre beside a 1–3.5 mm vessel at a distance of the vessel
  radius plus 0.3–0.8 nodule radii, so the vessel runs into the nodule.

Nodules never overlap each other (5 mm apart at least), and their centres
keep half a radius clear of every bronchus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.lungspace import depth_below_pleura, pleural_points, sample_points, side_of
from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.tubes import TubeSet, point_segment_distance
from engine.phantom.vessels import VesselTree

_ATTEMPTS = 12


@dataclass(frozen=True)
class Placement:
    """Where a nodule sits.

    Args:
        center: ``(3,)`` patient-frame mm.
        side: Lung side (1 right, 2 left).
        location: ``"parenchyma"``, ``"juxtapleural"`` or ``"juxtavascular"``.
    """

    center: np.ndarray
    side: int
    location: str


class NodulePlacer:
    """Finds places for nodules in one patient's lungs.

    Args:
        thorax: The anatomy.
        trees: The lung vessel trees.
        airways: Outer surfaces of the airways (a nodule's centre keeps clear of them).
        rng: Random stream.
    """

    def __init__(self, thorax: Thorax, trees: list[VesselTree], airways: TubeSet, rng: np.random.Generator) -> None:
        self.thorax = thorax
        self.rng = rng
        # the drawn (bent) vessel segments, not the straight branches they bend from
        tubes = TubeSet.concat([t.tubes for t in trees])
        radius = np.minimum(tubes.r0, tubes.r1)
        gen = np.concatenate([t.tube_generation for t in trees])
        side = np.concatenate([np.full(len(t.tubes), t.side) for t in trees])
        self.big = tubes.select(np.maximum(tubes.r0, tubes.r1) >= 1.2)
        host = (radius >= 1.0) & (radius <= 3.5) & (gen >= 2)
        self.hosts = tubes.select(host)
        self.host_side = side[host]
        self.airways = airways.select(np.maximum(airways.r0, airways.r1) >= 0.8)
        self.taken: list[tuple[np.ndarray, float]] = []

    def _clear(self, points: np.ndarray, radius: float, vessel_margin: float | None) -> np.ndarray:
        ok = np.ones(points.shape[0], dtype=bool)
        for center, r in self.taken:
            ok &= np.linalg.norm(points - center, axis=1) > r + radius + 5.0
        if vessel_margin is not None and len(self.big):
            d, rv = point_segment_distance(points, self.big)
            ok &= np.all(d - rv - radius > vessel_margin, axis=1)
        if len(self.airways):
            d, ra = point_segment_distance(points, self.airways)
            ok &= np.all(d - ra > 0.5 * radius, axis=1)
        return ok

    def place(self, diameter: float, location: str) -> Placement:
        """A place for a nodule of ``diameter`` mm at the wanted ``location``.

        Falls back to a parenchymal place when the wanted kind cannot be found.
        """
        radius = diameter / 2.0
        for _ in range(_ATTEMPTS):
            side = RIGHT if self.rng.uniform() < 0.55 else LEFT
            found = None
            if location == "juxtapleural":
                found = self._juxtapleural(side, radius)
            elif location == "juxtavascular":
                found = self._juxtavascular(radius)
            else:
                found = self._parenchymal(side, radius)
            if found is not None:
                self.taken.append((found.center, radius))
                return found
        if location != "parenchyma":
            return self.place(diameter, "parenchyma")
        # a very large nodule in a small lung: take the deepest point found
        side = RIGHT
        pts = sample_points(self.thorax, self.rng, side, 64)
        depth = depth_below_pleura(self.thorax, pts, side, max_depth=radius + 10.0)
        best = Placement(pts[int(np.argmax(depth))], side, "parenchyma")
        self.taken.append((best.center, radius))
        return best

    def _parenchymal(self, side: int, radius: float) -> Placement | None:
        pts = sample_points(self.thorax, self.rng, side, 24, margin=min(radius + 4.0, 20.0))
        ok = self._clear(pts, radius, 0.5)
        if not ok.any():
            return None
        pts = pts[ok]
        depth = depth_below_pleura(self.thorax, pts, side, max_depth=radius + 5.0)
        good = np.flatnonzero(depth >= radius + 4.0)
        if good.size == 0:
            return None
        return Placement(pts[good[0]], side, "parenchyma")

    def _juxtapleural(self, side: int, radius: float) -> Placement | None:
        surface, inward = pleural_points(self.thorax, self.rng, side, 16)
        pts = surface + inward * (radius * self.rng.uniform(0.4, 0.8, size=(16, 1)))
        beyond = surface - 3.0 * inward  # against the chest wall or diaphragm, not the mediastinum
        costal = ~self.thorax.in_mediastinum(beyond[:, 0], beyond[:, 1], beyond[:, 2])
        ok = costal & (side_of(self.thorax, pts) == side) & self._clear(pts, radius, 0.0)
        if not ok.any():
            return None
        pts = pts[ok]
        depth = depth_below_pleura(self.thorax, pts, side, max_depth=radius + 2.0)
        good = np.flatnonzero((depth >= 0.3 * radius) & (depth <= 0.85 * radius))
        if good.size == 0:
            return None
        return Placement(pts[good[0]], side, "juxtapleural")

    def _juxtavascular(self, radius: float) -> Placement | None:
        if len(self.hosts) == 0:
            return None
        i = int(self.rng.integers(len(self.hosts)))
        a, b = self.hosts.p0[i], self.hosts.p1[i]
        rv = float(max(self.hosts.r0[i], self.hosts.r1[i]))
        axis = b - a
        q = a + self.rng.uniform(0.2, 0.8) * axis
        u = np.cross(axis, self.rng.normal(size=3))
        u /= max(float(np.linalg.norm(u)), 1e-9)
        center = q + u * (rv + radius * self.rng.uniform(0.3, 0.8))
        side = int(self.host_side[i])
        pts = center[None, :]
        if side_of(self.thorax, pts)[0] != side or not self._clear(pts, radius, None)[0]:
            return None
        if depth_below_pleura(self.thorax, pts, side, max_depth=radius + 2.0)[0] < radius + 1.0:
            return None
        return Placement(center, side, "juxtavascular")
