"""Lungs, mediastinum, heart, diaphragm and upper-abdominal organs as analytic shapes.

Each lung is the part of the thoracic cavity (inside the chest wall, above the
diaphragm) that is not mediastinum: a central core that is wide around the
great vessels and narrow between the lungs in front (the anterior junction
line), the heart with its pericardial fat, and the spine. Above a knee level
each lung is cut by an ellipsoidal cap, so it tapers to a rounded apex. The
diaphragm is two domes, the right higher, falling to deep posterior and
lateral costophrenic recesses; below it lie the liver, stomach, spleen and
kidneys.

All functions take patient-frame coordinates in mm (broadcastable arrays) and
are vectorised; the voxel renderer evaluates them on whole slices and the
planners (vessels, nodules, candidates) on point sets.
"""

from __future__ import annotations

import numpy as np

from engine.phantom.body import ChestWall, WallProfile
from engine.phantom.patient import PatientParams

RIGHT, LEFT = 1, 2


def _smoothstep(u: np.ndarray | float) -> np.ndarray:
    u = np.clip(np.asarray(u, dtype=np.float32), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


class Thorax:
    """The patient's thoracic and upper-abdominal anatomy.

    Args:
        patient: The patient's measurements.
        wall: The patient's chest wall (built from ``patient`` when omitted).

    Attributes (landmarks, mm, patient frame):
        cavity_half_width: Half width of the inner chest wall at mid-lung height.
        spine_y0: y of the vertebral body centres (before the kyphotic bow).
        trachea_xy, esophagus_xy: axial position of trachea and oesophagus.
        carina: ``(x, y, z)`` of the tracheal bifurcation.
        hilum: ``{RIGHT: xyz, LEFT: xyz}`` where the pulmonary arteries enter each lung.
        vein_hilum: ``{RIGHT: xyz, LEFT: xyz}`` where the pulmonary veins leave each lung.
        heart_xyz: centre of the heart's ventricles (see :meth:`heart_parts`).
        apex_z: ``{RIGHT: z, LEFT: z}`` top of each lung.
    """

    def __init__(self, patient: PatientParams, wall: ChestWall | None = None) -> None:
        self.p = p = patient
        self.wall = wall if wall is not None else ChestWall(patient)
        mid = 0.5 * p.lung_height
        self.cavity_half_width = float(self.wall.cavity_radius(np.array([0.0]), mid)[0])
        back = float(self.wall.cavity_radius(np.array([np.pi / 2]), mid)[0])
        self.spine_y0 = back + 2.0
        self.esophagus_xy = (6.0, self.spine_y0 - p.vertebra_ay - 9.0)
        self.trachea_radius = 8.5 + 1.5 * (p.body_a - 150.0) / 40.0
        self.trachea_xy = (-1.0, self.esophagus_xy[1] - 7.5 - 2.0 - self.trachea_radius)
        self.carina = (-1.0, self.trachea_xy[1] + 4.0, p.carina_z)
        tx, ty = self.trachea_xy
        self.hilum = {
            RIGHT: np.array([-(p.med_wx_upper + 14.0), ty + 10.0, p.carina_z - 25.0]),
            LEFT: np.array([p.med_wx_upper + 16.0, ty + 14.0, p.carina_z - 12.0]),
        }
        self.vein_hilum = {
            RIGHT: np.array([-(p.med_wx_lower + 16.0), ty + 2.0, p.carina_z - 60.0]),
            LEFT: np.array([p.med_wx_lower + 22.0, ty + 6.0, p.carina_z - 55.0]),
        }
        hx, hy = p.heart_center
        ax, ay, az = p.heart_axes
        self.heart_xyz = (hx, hy, float(self.dome(np.float32(hx), np.float32(hy))) + 0.72 * az)
        self.apex_z = {RIGHT: p.lung_height, LEFT: p.lung_height - p.apex_left_drop}
        a = self.cavity_half_width
        self._cap = {
            side: (sign * 0.5 * a, p.med_y + 10.0, 0.75 * a, 1.85 * p.med_wy)
            for side, sign in ((RIGHT, -1.0), (LEFT, 1.0))
        }

    # --- spine ----------------------------------------------------------------
    def spine_y(self, z: np.ndarray | float) -> np.ndarray:
        """y of the vertebral body centre at height ``z`` (a gentle kyphotic bow)."""
        p = self.p
        zc = 0.5 * (p.scan_bottom_z + p.scan_top_z)
        half = 0.5 * (p.scan_top_z - p.scan_bottom_z)
        u = (np.asarray(z, dtype=np.float32) - zc) / half
        return self.spine_y0 + p.kyphosis * (0.5 - u * u)

    # --- diaphragm ------------------------------------------------------------
    def dome(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm surface (lung above, abdomen below) at ``(x, y)``."""
        p = self.p
        a = self.cavity_half_width
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        yd = p.med_y - 10.0
        back = np.clip(y - yd, 0.0, None) / (0.62 * p.med_wy + 40.0)
        front = np.clip(yd - y, 0.0, None) / (0.62 * p.med_wy + 40.0)
        ap_drop = p.dome_back_drop * back**2 + 0.45 * p.dome_back_drop * front**2
        right = -p.dome_side_drop * ((x + 0.45 * a) / (0.55 * a)) ** 2 - ap_drop
        left = -p.dome_left_drop - p.dome_side_drop * ((x - 0.45 * a) / (0.55 * a)) ** 2 - ap_drop
        return np.maximum(np.maximum(right, left), -p.recess_depth)

    # --- mediastinum ----------------------------------------------------------
    def mediastinum_half_width(self, z: np.ndarray | float) -> np.ndarray:
        """Half width of the mediastinal core at height ``z``: wide at the great vessels."""
        p = self.p
        u = _smoothstep((np.asarray(z, dtype=np.float32) - (p.carina_z - 70.0)) / 55.0)
        return p.med_wx_lower + (p.med_wx_upper - p.med_wx_lower) * u

    def mediastinum_center_x(self, z: np.ndarray | float) -> np.ndarray:
        """x of the mediastinal core centre: shifted left at the aortic arch."""
        z = np.asarray(z, dtype=np.float32)
        return 7.0 * np.exp(-(((z - (self.p.carina_z + 22.0)) / 28.0) ** 2))

    def in_mediastinum(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """True inside the mediastinal core, the junction band, the heart (with fat) or the spine."""
        p = self.p
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        wx = self.mediastinum_half_width(z)
        xc = self.mediastinum_center_x(z)
        core = ((x - xc) / wx) ** 2 + ((y - p.med_y) / p.med_wy) ** 2 < 1.0
        band = np.abs(x) < p.junction
        sy = self.spine_y(z)
        # the vertebral body and everything behind it, with rounded flanks
        spine = ((x / (p.vertebra_ax + 7.0)) ** 2 + ((y - sy - 10.0) / (p.vertebra_ay + 16.0)) ** 2 < 1.0) | (
            (np.abs(x) < p.vertebra_ax + 2.0) & (y > sy)
        )
        return core | band | spine | (self.heart_q(x, y, z, margin=6.0) < 1.0)

    def heart_parts(self) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
        """Centres and semi-axes (mm) of the heart's ellipsoids: ventricles, right atrium, left atrium."""
        hx, hy, hz = self.heart_xyz
        ax, ay, az = self.p.heart_axes
        return [
            ((hx, hy, hz), (ax, ay, az)),
            ((hx - 0.75 * ax, hy + 0.25 * ay, hz + 0.25 * az), (0.42 * ax, 0.55 * ay, 0.55 * az)),
            ((hx - 0.35 * ax, hy + 0.8 * ay, hz + 0.45 * az), (0.45 * ax, 0.45 * ay, 0.4 * az)),
        ]

    def heart_q(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | float, margin: float = 0.0) -> np.ndarray:
        """Quadratic form of the heart (union of its ellipsoids) grown by ``margin`` mm (< 1 inside)."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        z = np.asarray(z, dtype=np.float32)
        q = None
        for (cx, cy, cz), (ax, ay, az) in self.heart_parts():
            part = ((x - cx) / (ax + margin)) ** 2 + ((y - cy) / (ay + margin)) ** 2 + ((z - cz) / (az + margin)) ** 2
            q = part if q is None else np.minimum(q, part)
        return q

    def mediastinum_reach(self, z: float) -> tuple[float, float]:
        """``(x_low, x_high)`` bounds (mm) of everything :meth:`in_mediastinum` can hold at height ``z``."""
        p = self.p
        wx = float(self.mediastinum_half_width(z)) + abs(float(self.mediastinum_center_x(z)))
        low = max(wx, p.junction, p.vertebra_ax + 7.0)
        high = low
        hx, _, hz = self.heart_xyz
        ax, _, az = p.heart_axes
        if abs(z - hz) < az + 6.0:
            low = max(low, -(hx - 1.2 * ax - 6.0))
            high = max(high, hx + ax + 6.0)
        return -low - 1.0, high + 1.0

    def knee_z(self, side: int) -> float:
        """Height above which lung ``side`` tapers to its apex."""
        return self.apex_z[side] - 140.0

    # --- lungs ----------------------------------------------------------------
    def cap_ok(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | float, side: int) -> np.ndarray:
        """True inside the apical cap of lung ``side``, and everywhere below its knee.

        Above the knee the lung is cut by an ellipse that holds the whole lung
        cross-section at the knee and whose semi-axes shrink as ``(1 - u^1.8)^0.7``
        (``u`` from 0 at the knee to 1 at the apex): narrow, with a rounded top.
        """
        cx, cy, ca, cb = self._cap[side]
        top = self.apex_z[side]
        knee = self.knee_z(side)
        z = np.asarray(z, dtype=np.float32)
        u = np.clip((z - knee) / (top - knee), 0.0, None)
        room = np.clip(1.0 - u**1.8, 0.0, None) ** 1.4
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        return (((x - cx) / ca) ** 2 + ((y - cy) / cb) ** 2 < room) | (z <= knee)

    def lung_side(
        self,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray | float,
        *,
        profile: WallProfile | None = None,
        dome: np.ndarray | None = None,
    ) -> np.ndarray:
        """Which lung each point is in: 0 none, 1 right (``x < 0``), 2 left.

        Args:
            x, y, z: Patient-frame mm (broadcastable).
            profile: Precomputed chest-wall profile at ``atan2(y, x)``.
            dome: Precomputed :meth:`dome` at ``(x, y)``.

        Returns:
            ``int8`` array of the broadcast shape.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        depth, profile = self.wall.depth(x, y, z, profile)
        inside = depth > profile.to_cavity + self.wall.top_inset(z)
        if dome is None:
            dome = self.dome(x, y)
        inside &= np.asarray(z, dtype=np.float32) > dome
        inside &= ~self.in_mediastinum(x, y, z)
        right = inside & (x < 0) & self.cap_ok(x, y, z, RIGHT)
        left = inside & (x > 0) & self.cap_ok(x, y, z, LEFT)
        return (right.astype(np.int8) * RIGHT + left.astype(np.int8) * LEFT).astype(np.int8)

    # --- abdomen ----------------------------------------------------------------
    def liver_edge_x(self, y: np.ndarray) -> np.ndarray:
        """Left edge (x) of the liver: the left lobe reaches further left in front."""
        return 30.0 - 0.45 * (np.asarray(y, dtype=np.float32) - self.p.med_y)

    def stomach(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes of the stomach (under the left dome)."""
        a = self.cavity_half_width
        top = -self.p.dome_left_drop
        return (0.45 * a, self.p.med_y + 5.0, top - 48.0), (0.36 * a, 42.0, 44.0)

    def spleen(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes of the spleen (posterolateral, left)."""
        a = self.cavity_half_width
        top = -self.p.dome_left_drop
        return (0.78 * a, self.spine_y0 + 8.0, top - 52.0), (0.2 * a, 38.0, 42.0)

    def kidneys(self) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
        """Centres and semi-axes of the kidneys' upper poles (bottom of the scan)."""
        y = self.spine_y0 + 6.0
        z = -self.p.recess_depth - 45.0
        return [((-62.0, y, z + 8.0), (24.0, 26.0, 55.0)), ((64.0, y, z), (24.0, 26.0, 55.0))]
