"""The reading tools in the window against closed form: an ellipsoid nodule's axes and volume, a MIP of a vessel and a nodule."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from app.planes import Plane, display_slice
from engine.detection.result import threshold_level
from tests.app.conftest import detect_and_wait, open_and_wait
from tests.app.fakes import FakeDetector
from tests.app.test_slab import NODULE_RADIUS, SHAPE, SLOPE, SPACING_IRC, VESSEL_RADIUS, vessel_and_nodule

#: The ellipsoid nodule: volume shape, spacing (index, row, col) mm, centre voxel, semi-axes (z, row, col) mm.
ELLIPSOID_SHAPE = (24, 64, 64)
ELLIPSOID_SPACING_IRC = (1.25, 0.7, 0.7)
ELLIPSOID_CENTRE = (12, 32, 32)
SEMI_MM = (5.0, 3.9, 7.2)  # off the voxel grid: a lesion edge does not fall on voxel centres


def _ellipsoid_mask() -> np.ndarray:
    grids = np.indices(ELLIPSOID_SHAPE, dtype=np.float64)
    terms = [((g - c) * s / a) ** 2 for g, c, s, a in zip(grids, ELLIPSOID_CENTRE, ELLIPSOID_SPACING_IRC, SEMI_MM)]
    return sum(terms) <= 1.0


class SegmentingDetector(FakeDetector):
    """The fake detector, with a segmentation that is exactly a given mask (p = 0.9 inside)."""

    def __init__(self, mask: np.ndarray, specs) -> None:
        super().__init__(specs)
        self.mask = mask

    def detect(self, ct, progress=None, cancelled=None):
        result = super().detect(ct, progress, cancelled)
        return replace(result, seg_probability=np.where(self.mask, np.uint8(230), np.uint8(0)))


def test_an_ellipsoid_nodules_axes_and_volume_in_the_close_up(qtbot, make_window, write_volume) -> None:
    mask = _ellipsoid_mask()
    hu = np.where(mask, 30, -850).astype(np.int16)
    spacing_xyz = ELLIPSOID_SPACING_IRC[::-1]
    window = make_window(detector=SegmentingDetector(mask, [(ELLIPSOID_CENTRE, 0.9, 0.3, 16.0)]))
    open_and_wait(qtbot, window, write_volume("ellipsoid.mhd", hu=hu, spacing_xyz=spacing_xyz))
    detect_and_wait(qtbot, window)
    assert threshold_level(window.state.result.seg_threshold) < 230  # the mask is what is segmented
    window.state.select(window.state.findings.findings[0].id)
    m = window.crop_panel.measurement
    voxel = max(ELLIPSOID_SPACING_IRC[1:])
    assert m is not None and m.from_mask
    assert m.long_axis_mm == pytest.approx(2 * SEMI_MM[2], abs=voxel)  # 14.4 mm along the columns
    assert m.short_axis_mm == pytest.approx(2 * SEMI_MM[1], abs=voxel)  # 7.8 mm along the rows
    exact = 4.0 / 3.0 * math.pi * SEMI_MM[0] * SEMI_MM[1] * SEMI_MM[2]
    assert m.volume_mm3 == pytest.approx(exact, rel=0.05)
    assert m.slice_index == ELLIPSOID_CENTRE[0] and m.consistency == "solid"
    text = window.crop_panel.size_text.text()
    assert f"{m.long_axis_mm:.1f} × {m.short_axis_mm:.1f} mm" in text and f"{m.volume_mm3:,.0f} mm³" in text


def _run_mm(image: np.ndarray, row: int) -> float:
    return float(np.count_nonzero(image[row] > -500)) * SPACING_IRC[2]


def test_a_mip_slab_in_the_view_draws_a_vessel_as_a_line_and_a_nodule_as_a_dot(qtbot, window, write_volume) -> None:
    hu, yv, ys = vessel_and_nodule()
    open_and_wait(qtbot, window, write_volume("vessel.mhd", hu=hu, spacing_xyz=SPACING_IRC[::-1]))
    axial = window.views[Plane.AXIAL]
    axial.go_to_slice(20)
    vessel_row, nodule_row = int(round(yv / SPACING_IRC[1])), int(round(ys / SPACING_IRC[1]))
    plain = axial.image.image
    assert np.array_equal(plain, display_slice(hu, axial.layout_, 20))
    window.actions_["slab"].trigger()  # S: MIP, 10 mm
    assert window.state.slab.enabled and window.state.slab.mode.value == "mip"
    for _ in range(2):
        window.actions_["slab_thicker"].trigger()  # ] ]: 20 mm
    thickness = window.state.slab.thickness_mm
    mip = axial.image.image
    assert "MIP slab" in axial.canvas.info.text()
    # the vessel: in one slice a short stretch, in the slab a line about T / slope long (see test_slab)
    cos = 1.0 / math.hypot(1.0, SLOPE)
    half = (round(0.5 * (thickness / SPACING_IRC[0] - 1.0))) * SPACING_IRC[0]
    assert _run_mm(plain, vessel_row) == pytest.approx(2.0 * VESSEL_RADIUS / cos / SLOPE, abs=1.5)
    assert _run_mm(mip, vessel_row) == pytest.approx(2.0 * (half + VESSEL_RADIUS / cos) / SLOPE, abs=1.5)
    assert _run_mm(mip, vessel_row) > 5 * _run_mm(plain, vessel_row)
    # the nodule stays a dot: the same disc as its middle slice, as wide as the sphere
    disc = mip[nodule_row - 10 : nodule_row + 11] > -500
    cols = np.flatnonzero(disc.any(axis=0))
    assert (np.ptp(cols) + 1) * SPACING_IRC[2] == pytest.approx(2 * NODULE_RADIUS, abs=1.0)
    assert np.array_equal(disc, plain[nodule_row - 10 : nodule_row + 11] > -500)
    assert mip.shape == plain.shape == SHAPE[1:]
    window.actions_["slab"].trigger()
    assert np.array_equal(axial.image.image, plain)
