"""Thin-slab projections of one plane: MIP, MinIP and average over a few mm (no Qt).

Lung-CAD readers tell a vessel from a nodule on a thin-slab maximum-intensity
projection: across 10 mm a vessel becomes a line, a nodule stays a dot. A slab
is centred on the crosshair's slice and covers ``thickness_mm`` (rounded to an
odd number of slices so it stays centred).

Scrubbing must stay fast (one slice step ≲ 16 ms on 512×512×300), so
:class:`SlabProjector` keeps a running structure per view:

* the slab's slices as C-contiguous 2D copies, cached by index, so a step
  fetches one new slice (the strided gather of a coronal or sagittal slice is
  the expensive part) and reuses the rest;
* for the average, a running ``int32`` sum over the slab: a step adds the slice
  that enters and subtracts the one that leaves;
* for MIP/MinIP, the in-place maximum (minimum) over the cached slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from app.planes import PlaneLayout, slice_2d

#: Slab thickness limits and default, mm.
MIN_THICKNESS_MM = 5.0
MAX_THICKNESS_MM = 20.0
DEFAULT_THICKNESS_MM = 10.0


class SlabMode(str, Enum):
    """How the slices of a slab are combined."""

    MIP = "mip"  # maximum: vessels become lines, nodules stay dots
    MINIP = "minip"  # minimum: airways and emphysema
    MEAN = "mean"  # average: a thick slice with less noise

    @property
    def label(self) -> str:
        """Short name drawn on the view."""
        return {"mip": "MIP", "minip": "MinIP", "mean": "Average"}[self.value]


@dataclass(frozen=True)
class SlabSettings:
    """Whether the views show a slab and how.

    Args:
        enabled: Slab on (S toggles it).
        mode: MIP, MinIP or average.
        thickness_mm: Slab thickness, clipped to 5–20 mm.
    """

    enabled: bool = False
    mode: SlabMode = SlabMode.MIP
    thickness_mm: float = DEFAULT_THICKNESS_MM

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SlabMode(self.mode))
        object.__setattr__(self, "enabled", bool(self.enabled))
        thickness = float(np.clip(float(self.thickness_mm), MIN_THICKNESS_MM, MAX_THICKNESS_MM))
        object.__setattr__(self, "thickness_mm", thickness)


def slab_half_slices(thickness_mm: float, spacing_mm: float) -> int:
    """Slices on each side of the centre slice for a slab of ``thickness_mm``.

    The slab holds ``2 * half + 1`` slices, the odd count nearest to
    ``thickness_mm / spacing_mm`` (at least one slice).
    """
    return max(0, int(np.floor(0.5 * (float(thickness_mm) / float(spacing_mm) - 1.0) + 0.5)))


def slab_range(center: int, n_slices: int, thickness_mm: float, spacing_mm: float) -> tuple[int, int]:
    """First and last slice (inclusive, clipped to the volume) of the slab centred on ``center``."""
    half = slab_half_slices(thickness_mm, spacing_mm)
    return max(0, int(center) - half), min(int(n_slices) - 1, int(center) + half)


class SlabProjector:
    """Slab images of one plane of one volume, with the running structure that makes scrubbing cheap.

    Args:
        volume: ``(index, row, col)`` array (int16 HU); not modified, not copied whole.
        layout: The plane's layout (which axis is the slab axis).
    """

    def __init__(self, volume: np.ndarray, layout: PlaneLayout) -> None:
        self.volume = volume
        self.layout = layout
        self._slices: dict[int, np.ndarray] = {}
        self._sum: np.ndarray | None = None
        self._sum_range: tuple[int, int] | None = None

    def _slice(self, k: int) -> np.ndarray:
        cached = self._slices.get(k)
        if cached is None:
            cached = np.ascontiguousarray(slice_2d(self.volume, self.layout, k))
            self._slices[k] = cached
        return cached

    def _forget_outside(self, lo: int, hi: int) -> None:
        """Drop cached slices far from the slab (keep one slab's width either side for scrubbing back)."""
        width = hi - lo + 1
        for k in [k for k in self._slices if k < lo - width or k > hi + width]:
            del self._slices[k]

    def project(self, center: int, mode: SlabMode | str, thickness_mm: float) -> np.ndarray:
        """The slab centred on slice ``center``.

        Args:
            center: Centre slice index along ``layout.slice_axis``.
            mode: MIP, MinIP or average.
            thickness_mm: Slab thickness in mm.

        Returns:
            ``(n_v, n_u)`` C-contiguous ``float32`` image (rows along v, columns
            along u, not flipped), like :func:`app.planes.display_slice`.
        """
        mode = SlabMode(mode)
        layout = self.layout
        lo, hi = slab_range(center, layout.n_slices, thickness_mm, layout.spacing_slice)
        self._forget_outside(lo, hi)
        if mode == SlabMode.MEAN:
            return self._mean(lo, hi)
        combine = np.maximum if mode == SlabMode.MIP else np.minimum
        out = self._slice(lo).copy()
        for k in range(lo + 1, hi + 1):
            combine(out, self._slice(k), out=out)
        return out.astype(np.float32)

    def _mean(self, lo: int, hi: int) -> np.ndarray:
        old = self._sum_range
        if self._sum is None or old is None or old[1] < lo or hi < old[0]:  # nothing shared: sum afresh
            self._sum = np.zeros(self._slice(lo).shape, dtype=np.int32)
            for k in range(lo, hi + 1):
                self._sum += self._slice(k)
        else:
            # slide: add what entered, subtract what left (also handles a clipped slab at the volume's ends)
            for k in range(lo, hi + 1):
                if not old[0] <= k <= old[1]:
                    self._sum += self._slice(k)
            for k in range(old[0], old[1] + 1):
                if not lo <= k <= hi:
                    self._sum -= self._slice_any(k)
        self._sum_range = (lo, hi)
        return np.multiply(self._sum, np.float32(1.0 / (hi - lo + 1)), dtype=np.float32)  # no float64 copy

    def _slice_any(self, k: int) -> np.ndarray:
        """A slice that left the slab: from the cache when still there, else read again."""
        return self._slices.get(k) if k in self._slices else np.ascontiguousarray(slice_2d(self.volume, self.layout, k))
