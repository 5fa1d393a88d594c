"""The lesion's inscribed diameter on its crop, and the size-aware malignancy formula (closed-form cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.crops import CLASSIFIER_CROP
from engine.lesion_size import (
    MIN_DIAMETER_MM,
    STEP_MM,
    crop_centre,
    inscribed_diameter_mm,
    logit,
    size_aware_probability,
)

SPACING = (1.25, 0.7, 0.7)


def _distance_mm(center=None, spacing=SPACING) -> np.ndarray:
    """mm distance of each voxel of a classifier crop from ``center`` (default the crop's centre)."""
    c = crop_centre(CLASSIFIER_CROP) if center is None else np.asarray(center, dtype=np.float64)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in CLASSIFIER_CROP], indexing="ij")
    return np.sqrt(sum(((g - ci) * si) ** 2 for g, ci, si in zip(grids, c, spacing)))


def _sphere(radius_mm: float, hu: float = 20.0) -> np.ndarray:
    return np.where(_distance_mm() <= radius_mm, hu, -850.0).astype(np.int16)


@pytest.mark.parametrize("radius", [2.0, 3.0, 5.0, 8.0, 12.0])
def test_a_sphere_measures_its_diameter_within_a_voxel(radius):
    d = inscribed_diameter_mm(_sphere(radius)[None], SPACING)[0]
    # the rays' samples snap to voxels: the way out is found up to about one in-plane voxel and a step
    assert 2 * radius - 1.4 <= d <= 2 * radius + 2 * STEP_MM


def test_diameters_grow_with_the_sphere_and_do_not_depend_on_the_batch():
    radii = [2.0, 3.0, 4.5, 6.0, 9.0]
    crops = np.stack([_sphere(r) for r in radii])
    together = inscribed_diameter_mm(crops, SPACING)
    assert np.all(np.diff(together) > 0)
    one_by_one = [inscribed_diameter_mm(c[None], SPACING)[0] for c in crops]
    np.testing.assert_array_equal(together, one_by_one)


def test_the_spacing_is_what_makes_millimetres():
    crop = _sphere(4.0)[None]
    # the same voxels read on a grid twice as coarse are a lesion twice as large
    fine = inscribed_diameter_mm(crop, SPACING)[0]
    coarse = inscribed_diameter_mm(crop, tuple(2 * s for s in SPACING))[0]
    assert coarse == pytest.approx(2 * fine, abs=2 * STEP_MM + 1.0)


def test_ground_glass_counts_as_lesion():
    solid = inscribed_diameter_mm(_sphere(5.0, 20.0)[None], SPACING)[0]
    ggo = inscribed_diameter_mm(_sphere(5.0, -550.0)[None], SPACING)[0]
    assert ggo == pytest.approx(solid, abs=1e-9)


def test_a_nodule_on_the_chest_wall_or_a_vessel_keeps_its_own_size():
    radius = 4.0
    alone = inscribed_diameter_mm(_sphere(radius)[None], SPACING)[0]
    crop = _sphere(radius)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in CLASSIFIER_CROP], indexing="ij")
    centre = crop_centre(CLASSIFIER_CROP)
    wall = crop.copy()
    wall[(grids[2] - centre[2]) * SPACING[2] >= radius - 0.5] = 40  # soft tissue from the sphere's side onwards
    vessel = crop.copy()
    across = np.sqrt(((grids[0] - centre[0]) * SPACING[0]) ** 2 + ((grids[1] - centre[1]) * SPACING[1]) ** 2)
    vessel[across <= 1.5] = 40  # a 3 mm vessel through the nodule along the column axis
    on_wall, on_vessel = inscribed_diameter_mm(np.stack([wall, vessel]), SPACING)
    assert on_vessel == pytest.approx(alone, abs=0.8)
    # the inscribed ball may lean 2 mm into the wall (the centre's slack), never take the wall's size
    assert alone - 0.8 <= on_wall <= alone + 4.0 + 0.8


def test_an_off_centre_lesion_is_found_within_the_slack_and_air_is_the_minimum():
    shifted = np.where(_distance_mm(crop_centre(CLASSIFIER_CROP) + np.array([0.0, 0.0, 1.5 / SPACING[2]])) <= 5.0,
                       20, -850).astype(np.int16)
    d_shifted, d_air = inscribed_diameter_mm(np.stack([shifted, np.full(CLASSIFIER_CROP, -850, np.int16)]), SPACING)
    assert d_shifted == pytest.approx(inscribed_diameter_mm(_sphere(5.0)[None], SPACING)[0], abs=0.8)
    assert d_air == MIN_DIAMETER_MM


def test_bad_spacing_is_refused():
    with pytest.raises(ValueError, match="spacing"):
        inscribed_diameter_mm(_sphere(3.0)[None], (0.0, 0.7, 0.7))
    with pytest.raises(ValueError, match="spacing"):
        inscribed_diameter_mm(_sphere(3.0)[None], (float("nan"), 0.7, 0.7))


def test_the_size_aware_formula():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(size_aware_probability((1.0, 0.0, 0.0), p, np.full(3, 7.0)), p, rtol=1e-12)
    # b ln d + c = 0 at d = 8 mm: the CNN's logit alone; doubling d adds b ln 2
    half = size_aware_probability((0.0, 2.0, -2.0 * math.log(8.0)), np.full(2, 0.3), np.array([8.0, 16.0]))
    assert half[0] == pytest.approx(0.5)
    assert half[1] == pytest.approx(1.0 / (1.0 + math.exp(-2.0 * math.log(2.0))))
    assert logit(np.array([0.0, 1.0])).tolist() == pytest.approx([math.log(1e-7 / (1 - 1e-7)), -math.log(1e-7 / (1 - 1e-7))])
