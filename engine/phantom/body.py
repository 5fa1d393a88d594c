"""The body outline and the chest wall: skin, fat, muscle, the rib layer, and the table.

The outline of each axial cross-section is a super-ellipse around the body axis
(rounder in front, flatter on the back where the patient lies), slightly
rippled. The wall layers are thicknesses measured inwards along rays from the
body axis, functions of the ray angle ``theta = atan2(y, x)`` (patient frame,
``y`` posterior): pectoral muscles in front, thick paraspinal muscles beside
the spine, more fat at the sides. Everything inside the rib layer is the
thoracic (and, below the diaphragm, abdominal) cavity.

Lengths are mm in the patient frame (see :mod:`engine.phantom.patient`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.patient import PatientParams

#: Half width (mm) of the scanner table.
TABLE_HALF_WIDTH = 235.0
#: Thickness (mm) of the table's dense shell.
TABLE_SHELL = 1.6


@dataclass(frozen=True)
class WallProfile:
    """Chest-wall geometry along rays at given angles (arrays of the angles' shape, mm).

    Args:
        outline: Distance of the skin from the body axis at body scale 1.
        skin, fat, muscle, ribs: Layer thicknesses, outside in.
    """

    outline: np.ndarray
    skin: np.ndarray
    fat: np.ndarray
    muscle: np.ndarray
    ribs: np.ndarray

    def sub(self, window: tuple[slice, slice]) -> "WallProfile":
        """The profile of a 2D window of pixels."""
        return WallProfile(
            self.outline[window], self.skin[window], self.fat[window], self.muscle[window], self.ribs[window]
        )

    @property
    def to_cavity(self) -> np.ndarray:
        """Depth below the skin where the cavity starts (mm)."""
        return self.skin + self.fat + self.muscle + self.ribs


def _bump(theta: np.ndarray, center: float, width: float) -> np.ndarray:
    """A smooth angular bump of height 1 at ``center`` (radians), periodic."""
    d = (theta - np.float32(center - np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
    return np.exp(-((d / np.float32(width)) ** 2))


class ChestWall:
    """The body outline and chest-wall layers of one patient.

    Args:
        patient: The patient's measurements.
    """

    def __init__(self, patient: PatientParams) -> None:
        self.p = patient

    def profile(self, theta: np.ndarray) -> WallProfile:
        """Wall geometry along rays at angles ``theta`` (radians, any shape)."""
        p = self.p
        theta = np.asarray(theta, dtype=np.float32)
        c, s = np.cos(theta), np.sin(theta)
        posterior = s > 0
        b = np.where(posterior, p.body_b_post, p.body_b_ant).astype(np.float32)
        e = np.where(posterior, p.body_p_post, p.body_p_ant).astype(np.float32)
        outline = (np.abs(c / p.body_a) ** e + np.abs(s / b) ** e) ** (-1.0 / e)
        ripple = np.ones_like(outline)
        for k, amp, phase in p.body_harmonics:
            ripple += amp * np.cos(k * theta + phase)
        outline = outline * ripple
        back = np.clip(s, 0.0, 1.0)
        front = np.clip(-s, 0.0, 1.0)
        fat = p.fat_front * front**2 + p.fat_side * c**2 + p.fat_back * back**2
        # pectoral muscles peak either side of the sternum; thin over the sternum itself
        pec = _bump(theta, -np.pi / 2 - 0.62, 0.42) + _bump(theta, -np.pi / 2 + 0.62, 0.42)
        over_sternum = _bump(theta, -np.pi / 2, 0.16)
        muscle = (
            p.muscle_side * c**2
            + p.muscle_back * back**2
            + p.muscle_pec * pec
            + 4.0 * front**2
            - 3.0 * over_sternum
            + p.muscle_paraspinal * _bump(theta, np.pi / 2, 0.34)
            # the posterolateral corners: scapular muscles round off the rib cage
            + 12.0 * (_bump(theta, np.pi / 2 - 0.8, 0.35) + _bump(theta, np.pi / 2 + 0.8, 0.35))
        )
        ribs = np.full_like(outline, p.rib_layer)
        skin = np.full_like(outline, p.skin)
        return WallProfile(outline.astype(np.float32), skin, fat.astype(np.float32), muscle.astype(np.float32), ribs)

    def scale(self, z: np.ndarray | float) -> np.ndarray:
        """Body outline scale at height ``z``: a little narrower at the top and in the abdomen."""
        z = np.asarray(z, dtype=np.float32)
        top = np.clip((z - (self.p.lung_height - 30.0)) / 60.0, 0.0, 1.0)
        low = np.clip(-z / 120.0, 0.0, 1.0)
        return 1.0 - 0.05 * top - 0.03 * low

    def top_inset(self, z: np.ndarray | float) -> np.ndarray:
        """Extra wall thickness (mm): the thoracic cage is a cone, narrowing towards the neck."""
        z = np.asarray(z, dtype=np.float32)
        h = self.p.lung_height
        cone = 18.0 * np.clip(z / h, 0.0, 1.3) ** 1.5
        top = np.clip((z - (h - 85.0)) / 85.0, 0.0, 1.4)
        return cone + 24.0 * top**2

    def depth(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | float, profile: WallProfile | None = None):
        """Depth below the skin (mm) along the ray from the body axis; > 0 inside the body.

        Args:
            x, y, z: Patient-frame coordinates (broadcastable arrays).
            profile: The wall profile at ``atan2(y, x)``, when precomputed.

        Returns:
            ``(depth, profile)``: depth as a ``float32`` array and the profile used.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if profile is None:
            profile = self.profile(np.arctan2(y, x))
        radius = np.hypot(x, y)
        return self.scale(z) * profile.outline - radius, profile

    def cavity_radius(self, theta: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """Distance (mm) of the inner chest wall from the body axis at angle ``theta``, height ``z``."""
        prof = self.profile(theta)
        return self.scale(z) * prof.outline - prof.to_cavity - self.top_inset(z)

    def in_cavity(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """True inside the inner chest wall (thoracic or abdominal cavity)."""
        d, prof = self.depth(x, y, z)
        return d > prof.to_cavity + self.top_inset(z)

    def back_y(self, z: float = 0.0) -> float:
        """Patient-frame y (mm) of the skin of the back on the midline."""
        prof = self.profile(np.array([np.pi / 2]))
        return float(self.scale(z) * prof.outline[0])

    def table_top(self, x: np.ndarray) -> np.ndarray:
        """Patient-frame y of the table surface under the patient at ``x`` (cradle shape)."""
        x = np.asarray(x, dtype=np.float32)
        y0 = self.p.body_b_post + self.p.table_gap
        return y0 - self.p.table_curvature * x**2

    def table_mask(self, x: np.ndarray, y: np.ndarray, pixel: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Table shell and table core masks at patient ``(x, y)``.

        Args:
            x, y: Patient-frame mm (broadcastable).
            pixel: Pixel size (mm); the shell is drawn at least 1.1 pixels thick
                so that it does not break into dashes on coarse grids.

        Returns:
            ``(shell, core)`` boolean arrays (all False when the patient has no table).
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if not self.p.has_table:
            empty = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
            return empty, empty
        below = y - self.table_top(x)
        inside = (below >= 0) & (below < self.p.table_thickness) & (np.abs(x) < TABLE_HALF_WIDTH)
        t = max(TABLE_SHELL, 1.1 * pixel)
        shell = inside & ((below < t) | (below > self.p.table_thickness - t))
        return shell, inside & ~shell
