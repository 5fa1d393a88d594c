"""Thin-slab projections: a vessel becomes a line and a nodule stays a dot (closed form); averages slide (no Qt)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from app.planes import Plane, display_slice, plane_layout
from app.slab import SlabMode, SlabProjector, SlabSettings, slab_half_slices, slab_range
from app.state import ViewerState
from engine.geometry import Geometry

SPACING_IRC = (1.0, 0.7, 0.7)
SHAPE = (40, 96, 96)


def _grid():
    i, r, c = np.indices(SHAPE, dtype=np.float64)
    return i * SPACING_IRC[0], r * SPACING_IRC[1], c * SPACING_IRC[2]


def _axial(volume):
    geometry = Geometry((0.0, 0.0, 0.0), SPACING_IRC[::-1])
    return plane_layout(geometry, volume.shape, Plane.AXIAL)


def _run_length_along_columns(image: np.ndarray, row: int) -> float:
    return float(np.count_nonzero(image[row] > 0)) * SPACING_IRC[2]


#: The vessel's slope (mm of z per mm of x) and radius, and the nodule's radius, mm, in :func:`vessel_and_nodule`.
SLOPE, VESSEL_RADIUS, NODULE_RADIUS = 0.25, 1.0, 4.0


def vessel_and_nodule() -> tuple[np.ndarray, float, float]:
    """A lung-like volume with an oblique vessel and a spherical nodule, crossing slice 20.

    Returns:
        ``(hu, yv, ys)``: the ``SHAPE`` int16 volume (spacing ``SPACING_IRC``),
        and the y (mm) of the vessel's axis and of the nodule's centre.
    """
    z, y, x = _grid()
    zc, yc, xc = 20.0, 48 * 0.7, 48 * 0.7
    hu = np.full(SHAPE, -900, dtype=np.int16)
    # vessel: a cylinder of radius 1 mm in the x-z plane at y = yc - 15 mm, climbing 1 mm in z per 4 mm in x
    slope = SLOPE
    yv = yc - 15.0
    along = np.array([1.0, 0.0, slope]) / math.hypot(1.0, slope)  # (x, y, z) direction
    dx, dy, dz = x - xc, y - yv, z - zc
    t = dx * along[0] + dz * along[2]
    dist2 = (dx - t * along[0]) ** 2 + dy**2 + (dz - t * along[2]) ** 2
    hu[dist2 <= VESSEL_RADIUS**2] = 100
    # nodule: a sphere of radius 4 mm at y = yc + 15 mm
    ys = yc + 15.0
    hu[(x - xc) ** 2 + (y - ys) ** 2 + (z - zc) ** 2 <= NODULE_RADIUS**2] = 100
    return hu, yv, ys


def test_mip_shows_an_oblique_vessel_as_a_line_and_a_sphere_as_a_disc() -> None:
    hu, yv, ys = vessel_and_nodule()
    slope = SLOPE
    layout = _axial(hu)
    projector = SlabProjector(hu, layout)
    thickness = 15.0
    mip = projector.project(20, SlabMode.MIP, thickness)
    single = display_slice(hu, layout, 20)
    vessel_row, nodule_row = int(round(yv / 0.7)), int(round(ys / 0.7))
    # the vessel: visible where it lies within the slab (|z - zc| <= T/2 + r / cos), a line T / slope long
    # (slice k mm from the centre shows the axis points within r / cos of z = k: |x · slope - k| <= r / cos)
    half = slab_half_slices(thickness, SPACING_IRC[0]) * SPACING_IRC[0]  # the outer slices' centres, mm
    cos = 1.0 / math.hypot(1.0, slope)
    expected = 2.0 * (half + 1.0 / cos) / slope
    assert _run_length_along_columns(mip, vessel_row) == pytest.approx(expected, abs=1.5)
    assert _run_length_along_columns(single, vessel_row) == pytest.approx(2.0 * (1.0 / cos) / slope, abs=1.5)
    assert expected > 6 * 2.0 * (1.0 / cos) / slope / 2  # the slab shows it many times longer than a slice
    # ... and stays thin across: about 2 mm wide
    vessel_cols = np.flatnonzero(mip[vessel_row] > 0)
    width = np.count_nonzero(mip[vessel_row - 8 : vessel_row + 9, vessel_cols[len(vessel_cols) // 2]] > 0) * 0.7
    assert width == pytest.approx(2.0, abs=1.4)
    # the nodule: a disc of the sphere's radius (its largest section), round, no longer than it is wide
    disc = mip[nodule_row - 10 : nodule_row + 11] > 0
    area = disc.sum() * 0.7 * 0.7
    assert area == pytest.approx(math.pi * 4.0**2, rel=0.12)
    rows, cols = np.nonzero(disc)
    assert (np.ptp(cols) + 1) * 0.7 == pytest.approx(8.0, abs=1.0) and (np.ptp(rows) + 1) * 0.7 == pytest.approx(8.0, abs=1.0)
    # MinIP of the same slab drops both (the background is everywhere on some slice)
    assert not (projector.project(20, SlabMode.MINIP, thickness) > -900).any()


def test_average_slides_incrementally_and_matches_a_direct_mean() -> None:
    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 1000, size=(30, 12, 10)).astype(np.int16)
    geometry = Geometry((0.0, 0.0, 0.0), (0.7, 0.8, 2.0))
    for plane in Plane:
        layout = plane_layout(geometry, hu.shape, plane)
        projector = SlabProjector(hu, layout)
        centres = [5, 6, 7, 6, 0, 1, layout.n_slices - 1, layout.n_slices - 2, 3]
        for c in centres:
            lo, hi = slab_range(c, layout.n_slices, 10.0, layout.spacing_slice)
            stack = np.stack([display_slice(hu, layout, k) for k in range(lo, hi + 1)])
            assert_allclose(projector.project(c, SlabMode.MEAN, 10.0), stack.mean(axis=0), rtol=1e-5, atol=1e-3)
            assert_array_equal(projector.project(c, SlabMode.MIP, 10.0), stack.max(axis=0))
            assert_array_equal(projector.project(c, "minip", 10.0), stack.min(axis=0))
        assert projector.project(3, SlabMode.MIP, 10.0).flags.c_contiguous


def test_slab_sizes_and_settings() -> None:
    assert slab_half_slices(10.0, 1.0) == 5 and slab_half_slices(5.0, 2.5) == 1 and slab_half_slices(5.0, 6.0) == 0
    assert slab_range(1, 30, 10.0, 1.0) == (0, 6) and slab_range(29, 30, 10.0, 1.0) == (24, 29)
    assert SlabSettings(thickness_mm=50).thickness_mm == 20.0 and SlabSettings(thickness_mm=1).thickness_mm == 5.0
    state = ViewerState()
    seen: list[str] = []
    state.subscribe("slab", lambda: seen.append("slab"))
    state.set_slab(enabled=True, mode="minip", thickness_mm=12)
    state.set_slab(enabled=True)
    assert state.slab == SlabSettings(True, SlabMode.MINIP, 12.0) and seen == ["slab"]
    state.set_cine(playing=True, fps=500)
    assert not state.cine_playing and state.cine_fps == 60.0  # no volume: nothing to play
