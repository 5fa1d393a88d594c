"""Patient-frame coordinates of the pixels of an axial slice, and windows into it.

The renderer draws most structures only inside a small window around them
(a vertebra covers a few thousand of a slice's 262,144 pixels), so each
drawing function asks :meth:`SliceGrid.window` for the pixel rectangle that
covers a patient-frame box.
"""

from __future__ import annotations

import numpy as np

from engine.phantom.config import Frame

Window = tuple[slice, slice]


class SliceGrid:
    """Pixel coordinates of a canonical axial slice in the patient frame.

    Args:
        frame: The canonical grid.

    Attributes:
        x, y: ``float32 (rows, cols)`` patient-frame mm of every pixel.
        theta, radius: Polar angle (radians) and distance (mm) from the body axis.
    """

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.x, self.y = frame.slice_xy()
        self.theta = np.arctan2(self.y, self.x).astype(np.float32)
        self.radius = np.hypot(self.x, self.y).astype(np.float32)
        self.shape = self.x.shape
        a = np.deg2rad(frame.rotation_deg)
        self._cos, self._sin = float(np.cos(a)), float(np.sin(a))
        self._angles: dict[float, np.ndarray] = {}

    def window(self, cx: float, cy: float, rx: float, ry: float) -> Window | None:
        """Rows and columns covering the patient-frame box ``[cx ± rx] × [cy ± ry]``.

        Returns:
            ``(row_slice, col_slice)``, or ``None`` when the box misses the slice.
        """
        f = self.frame
        corners = np.array([[cx - rx, cy - ry], [cx + rx, cy - ry], [cx - rx, cy + ry], [cx + rx, cy + ry]])
        wx = self._cos * corners[:, 0] - self._sin * corners[:, 1] + f.translation[0]
        wy = self._sin * corners[:, 0] + self._cos * corners[:, 1] + f.translation[1]
        cols = (wx - f.grid_origin[0]) / f.spacing_xyz[0]
        rows = (wy - f.grid_origin[1]) / f.spacing_xyz[1]
        r0 = max(int(np.floor(rows.min())) - 1, 0)
        r1 = min(int(np.ceil(rows.max())) + 2, self.shape[0])
        c0 = max(int(np.floor(cols.min())) - 1, 0)
        c1 = min(int(np.ceil(cols.max())) + 2, self.shape[1])
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def angle_from(self, center: float) -> np.ndarray:
        """``float32 (rows, cols)``: angular distance (radians, 0..π) of each pixel from direction ``center``."""
        key = round(float(center), 6)
        cached = self._angles.get(key)
        if cached is None:
            d = (self.theta - np.float32(center - np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
            cached = np.abs(d).astype(np.float32)
            self._angles[key] = cached
        return cached

    @staticmethod
    def bbox(mask: np.ndarray) -> Window | None:
        """The smallest window holding every True pixel of ``mask`` (``None`` if empty)."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
