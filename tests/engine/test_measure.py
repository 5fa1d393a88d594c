"""Lesion measurements against closed form: ellipsoid axes and volume, a part-solid core (no Qt, no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.geometry import Geometry, irc_to_xyz
from engine.io.volume import CtVolume
from engine.measure import SOLID_HU, lesion_measurements, max_feret, measure_component, perpendicular_chord

SPACING_IRC = (1.25, 0.7, 0.8)  # anisotropic: thick slices, rows and columns unequal


def ellipsoid(shape, centre, semi_mm, spacing, angle_deg: float = 0.0) -> np.ndarray:
    """Voxels whose centres lie in an ellipsoid; semi-axes (index, row-ish, col-ish) in mm, rotated in-plane."""
    i, r, c = np.indices(shape, dtype=np.float64)
    z = (i - centre[0]) * spacing[0]
    y = (r - centre[1]) * spacing[1]
    x = (c - centre[2]) * spacing[2]
    t = math.radians(angle_deg)
    along = x * math.cos(t) + y * math.sin(t)  # the semi-axis semi_mm[2] runs at angle t from the column axis
    across = -x * math.sin(t) + y * math.cos(t)
    return (z / semi_mm[0]) ** 2 + (across / semi_mm[1]) ** 2 + (along / semi_mm[2]) ** 2 <= 1.0


def make_case(hu: np.ndarray, mask: np.ndarray, centre):
    geometry = Geometry((0.0, 0.0, 0.0), SPACING_IRC[::-1])
    ct = CtVolume(hu=hu, geometry=geometry, series_uid="1.2.measure")
    prob = np.where(mask, 230, 0).astype(np.uint8)
    idx = np.argwhere(mask)
    lo, hi = tuple(int(v) for v in idx.min(0)), tuple(int(v) + 1 for v in idx.max(0))
    xyz = tuple(float(v) for v in irc_to_xyz(geometry, centre))
    candidate = Candidate(1, tuple(float(v) for v in centre), xyz, 0.9, 0.5, int(mask.sum()), 10.0, (lo, hi))
    result = DetectionResult(ct.series_uid, hu.shape, geometry, (candidate,), prob, GroupingSettings(), {}, "cpu", {})
    return result, ct, candidate


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_ellipsoid_axes_and_volume_match_closed_form(angle) -> None:
    shape, centre = (24, 64, 64), (12.0, 32.0, 32.0)
    semi = (6.0, 5.0, 9.0)  # mm: z, short in-plane, long in-plane
    mask = ellipsoid(shape, centre, semi, SPACING_IRC, angle)
    hu = np.where(mask, 30, -850).astype(np.int16)
    result, ct, candidate = make_case(hu, mask, centre)
    m = lesion_measurements(result, ct, candidate)
    voxel = max(SPACING_IRC[1:])
    assert m.long_axis_mm == pytest.approx(2 * semi[2], abs=voxel)
    assert m.short_axis_mm == pytest.approx(2 * semi[1], abs=voxel)
    assert m.long_axis_mm > m.short_axis_mm
    exact = 4.0 / 3.0 * math.pi * semi[0] * semi[1] * semi[2]
    assert m.volume_mm3 == pytest.approx(exact, rel=0.03)
    assert m.slice_index == 12 and m.from_mask and m.consistency == "solid" and m.solid_axis_mm is None


def test_part_solid_finding_reports_the_solid_core() -> None:
    shape, centre = (20, 60, 60), (10.0, 30.0, 30.0)
    outer = ellipsoid(shape, centre, (7.0, 8.0, 8.0), SPACING_IRC)
    core = ellipsoid(shape, centre, (3.0, 3.0, 3.0), SPACING_IRC)
    hu = np.full(shape, -850, dtype=np.int16)
    hu[outer] = -600  # ground glass
    hu[core] = 40  # solid core, 6 mm across
    result, ct, candidate = make_case(hu, outer, centre)
    m = lesion_measurements(result, ct, candidate)
    assert m.consistency == "part-solid" and 0.0 < m.solid_fraction < 0.5
    assert m.solid_axis_mm == pytest.approx(6.0, abs=1.5 * 0.8)
    assert m.long_axis_mm == pytest.approx(16.0, abs=1.5 * 0.8)
    hu[outer] = -650
    hu[core] = -650
    assert lesion_measurements(result, CtVolume(hu, ct.geometry, ct.series_uid), candidate).consistency == "ground-glass"


def _speckled(hu: np.ndarray, outer: np.ndarray, slice_index: int, step: int = 5) -> np.ndarray:
    """``hu`` with single pixels at +50 HU on a grid inside the lesion's centre slice (noise above SOLID_HU)."""
    hu = hu.copy()
    rows, cols = np.nonzero(outer[slice_index])
    keep = (rows % step == 0) & (cols % step == 0)
    hu[slice_index, rows[keep], cols[keep]] = 50
    return hu


def test_isolated_dense_pixels_do_not_make_a_ground_glass_nodule_part_solid() -> None:
    shape, centre = (20, 60, 60), (10.0, 30.0, 30.0)
    outer = ellipsoid(shape, centre, (7.0, 8.0, 8.0), SPACING_IRC)
    hu = np.where(outer, -650, -850).astype(np.int16)
    hu = _speckled(hu, outer, 10)
    result, ct, candidate = make_case(hu, outer, centre)
    m = lesion_measurements(result, CtVolume(hu, ct.geometry, ct.series_uid), candidate)
    assert 0.0 < m.solid_fraction < 0.05  # the speckles are there ...
    assert m.consistency == "ground-glass" and m.solid_axis_mm is None  # ... but no solid part to measure


def test_the_solid_part_is_its_largest_piece_not_the_span_of_scattered_pixels() -> None:
    shape, centre = (20, 60, 60), (10.0, 30.0, 30.0)
    outer = ellipsoid(shape, centre, (7.0, 8.0, 8.0), SPACING_IRC)
    core = ellipsoid(shape, centre, (3.0, 2.5, 2.5), SPACING_IRC)
    hu = np.where(outer, -600, -850).astype(np.int16)
    hu = _speckled(hu, outer, 10)
    hu[core] = 40  # a 5 mm solid core; the speckles reach across the whole 16 mm lesion
    result, ct, candidate = make_case(hu, outer, centre)
    m = lesion_measurements(result, CtVolume(hu, ct.geometry, ct.series_uid), candidate)
    assert m.consistency == "part-solid"
    assert m.solid_axis_mm == pytest.approx(5.0, abs=1.5 * 0.8)


def test_only_the_component_at_the_centre_is_measured() -> None:
    mask = np.zeros((5, 30, 30), dtype=bool)
    mask[1:4, 5:15, 5:11] = True  # the finding: 10 rows × 6 cols
    mask[1:4, 20:28, 20:28] = True  # a neighbour inside the same box
    hu = np.where(mask, 20, -900).astype(np.int16)
    m = measure_component(mask, hu, (1.0, 1.0, 1.0), (2.0, 9.5, 7.5))
    assert m.volume_mm3 == pytest.approx(3 * 10 * 6)
    assert m.long_axis_mm == pytest.approx(math.hypot(10, 6))  # a rectangle's longest chord is its diagonal
    # centre off the mask: the nearest component is taken
    assert measure_component(mask, hu, (1.0, 1.0, 1.0), (2.0, 17.0, 17.0)).volume_mm3 == pytest.approx(3 * 64)


def test_feret_and_chord_of_pixels_and_empty_masks() -> None:
    one = np.zeros((3, 3), dtype=bool)
    one[1, 1] = True
    length, _ = max_feret(one, (2.0, 1.0))
    assert length == pytest.approx(math.hypot(2.0, 1.0))  # one pixel is its own diagonal long
    bar = np.zeros((5, 12), dtype=bool)
    bar[2, 1:11] = True
    length, direction = max_feret(bar, (1.0, 0.5))
    assert length == pytest.approx(math.hypot(5.0, 1.0)) and abs(direction[1]) > 0.9
    assert perpendicular_chord(bar, (1.0, 0.5), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert max_feret(np.zeros((4, 4), bool), (1.0, 1.0))[0] == 0.0
    assert perpendicular_chord(np.zeros((4, 4), bool), (1.0, 1.0), np.array([1.0, 0.0])) == 0.0
    with pytest.raises(ValueError, match="no voxel"):
        measure_component(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2)), (1, 1, 1), (0, 0, 0))


def test_empty_segmentation_falls_back_to_the_candidate() -> None:
    mask = ellipsoid((10, 20, 20), (5, 10, 10), (3, 3, 3), SPACING_IRC)
    result, ct, candidate = make_case(np.zeros((10, 20, 20), np.int16), mask, (5, 10, 10))
    empty = DetectionResult(result.series_uid, result.shape, result.geometry, result.candidates,
                            np.zeros(result.shape, np.uint8), GroupingSettings(), {}, "cpu", {})
    m = lesion_measurements(empty, ct, candidate)
    assert not m.from_mask and m.long_axis_mm == 10.0
    assert m.volume_mm3 == pytest.approx(candidate.voxel_count * np.prod(SPACING_IRC))
    assert SOLID_HU == -300.0


def test_axis_ends_lie_on_the_lesion_and_are_perpendicular() -> None:
    shape, centre = (16, 64, 64), (8.0, 30.0, 33.0)
    mask = ellipsoid(shape, centre, (5.0, 4.0, 9.0), SPACING_IRC, 30.0)
    result, ct, candidate = make_case(np.where(mask, 30, -850).astype(np.int16), mask, centre)
    m = lesion_measurements(result, ct, candidate)
    spacing = np.array(SPACING_IRC[1:])
    for ends, length in ((m.long_axis_rc, m.long_axis_mm), (m.short_axis_rc, m.short_axis_mm)):
        a, b = (np.array(p) for p in ends)
        assert np.linalg.norm((b - a) * spacing) == pytest.approx(length, abs=1e-6)
        mid = 0.5 * (a + b)
        assert np.linalg.norm((mid - np.array(centre[1:])) * spacing) < 1.5  # both chords cross near the centre
    long_dir = (np.array(m.long_axis_rc[1]) - np.array(m.long_axis_rc[0])) * spacing
    short_dir = (np.array(m.short_axis_rc[1]) - np.array(m.short_axis_rc[0])) * spacing
    cosine = abs(long_dir @ short_dir) / (np.linalg.norm(long_dir) * np.linalg.norm(short_dir))
    assert cosine < 1e-9


def test_a_vessel_crossing_a_ground_glass_nodule_is_not_its_solid_part() -> None:
    shape, centre = (20, 60, 60), (10.0, 30.0, 30.0)
    outer = ellipsoid(shape, centre, (7.0, 8.0, 8.0), SPACING_IRC)
    hu = np.where(outer, -620, -850).astype(np.int16)
    hu[8:13, 27:30, :] = 40  # a vessel 2 mm thick running straight through the nodule and beyond
    result, ct, candidate = make_case(hu, outer, centre)
    m = lesion_measurements(result, ct, candidate)
    assert 0.0 < m.solid_fraction < 0.5
    assert m.consistency == "ground-glass" and m.solid_axis_mm is None


def test_an_eccentric_round_core_touching_the_outline_is_the_solid_part() -> None:
    shape, centre = (20, 60, 60), (10.0, 30.0, 30.0)
    outer = ellipsoid(shape, centre, (7.0, 8.0, 8.0), SPACING_IRC)
    core = ellipsoid(shape, (10.0, 30.0, 37.0), (3.0, 2.5, 2.5), SPACING_IRC)  # 5 mm core at the rim
    hu = np.where(outer, -600, -850).astype(np.int16)
    hu[core & outer] = 40
    hu[8:13, 18:20, :] = 40  # and a thinner vessel crossing elsewhere
    result, ct, candidate = make_case(hu, outer, centre)
    m = lesion_measurements(result, ct, candidate)
    assert m.consistency == "part-solid"
    assert m.solid_axis_mm == pytest.approx(5.0, abs=1.5 * 0.8)
