"""Grouping on hand-made masks: components, weighted centres, sizes, erosion.

These test SPEC §4's (the book's) ``components`` method, so they ask for it by name (``BOOK``): the
default grouping is ``peaks`` (tests/engine/test_candidates.py). Tests of what both methods share
(the threshold, the scipy labeller) run with each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage

from engine.detection import grouping
from engine.detection.grouping import (
    equivalent_diameter_mm,
    erode_cross,
    group_components,
    grow_labels,
)
from engine.detection.result import threshold_level
from engine.detection.settings import METHODS, GroupingSettings

CROSS = ndimage.generate_binary_structure(3, 1)
#: SPEC §4's (the book's) grouping: 3D-cross erosion, 6-connected components, HU-weighted centres.
BOOK = GroupingSettings(method="components")


def _levels(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 255, 0).astype(np.uint8)


def _cube(shape, lo, size) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return mask


@pytest.mark.parametrize("method", METHODS)
def test_threshold_levels(method):
    assert threshold_level(0.5) == 127
    assert threshold_level(0.0) == 0 and threshold_level(1.0) == 255
    hu = np.zeros((9, 9, 9), np.int16)
    cube = _cube(hu.shape, (2, 2, 2), 5)
    settings = GroupingSettings(method=method)
    assert len(group_components(np.where(cube, 128, 0).astype(np.uint8), hu, settings)) == 1  # p ~ 0.502
    assert len(group_components(np.where(cube, 127, 0).astype(np.uint8), hu, settings)) == 0  # p ~ 0.498
    with pytest.raises(ValueError):
        threshold_level(1.5)


def test_erosion_matches_scipy_with_background_border():
    rng = np.random.default_rng(0)
    mask = rng.random((9, 11, 10)) > 0.3
    expected = ndimage.binary_erosion(mask, structure=CROSS, iterations=1, border_value=0)
    assert_array_equal(erode_cross(mask), expected)
    assert_array_equal(erode_cross(torch.from_numpy(mask)).numpy(), expected)


def test_two_cubes_and_specks():
    shape = (20, 24, 24)
    a = _cube(shape, (2, 3, 4), 5)
    b = _cube(shape, (10, 12, 14), 6)
    specks = np.zeros(shape, bool)
    specks[0, 0, 0] = specks[15, 2, 20] = True
    specks[18, 20, 3:5] = True  # a two-voxel line
    mask = a | b | specks
    hu = np.zeros(shape, np.int16)
    comps = group_components(_levels(mask), hu, BOOK)
    assert len(comps) == 2, "erosion drops the specks"
    # uniform HU: the weighted centre is the geometric centre of the eroded core
    assert_allclose(comps.centers_irc, [[4.0, 5.0, 6.0], [12.5, 14.5, 16.5]])
    opened_a = ndimage.binary_opening(a, structure=CROSS)
    opened_b = ndimage.binary_opening(b, structure=CROSS)
    assert_array_equal(comps.voxel_counts, [opened_a.sum(), opened_b.sum()])
    assert comps.voxel_counts[0] == 125 - 12 * 3 - 8
    assert_array_equal(comps.bbox_lo, [[2, 3, 4], [10, 12, 14]])
    assert_array_equal(comps.bbox_hi, [[7, 8, 9], [16, 18, 20]])


def test_weighted_centre_uses_clipped_hu_plus_1001():
    shape = (9, 9, 9)
    mask = _cube(shape, (2, 2, 2), 5)  # eroded core: indices 3..5 on each axis
    hu = np.zeros(shape, np.int16)
    hu[:, :, 3] = -3000  # clipped to -1000 -> weight 1
    hu[:, :, 4] = 0  # weight 1001
    hu[:, :, 5] = 4000  # clipped to 1000 -> weight 2001
    comps = group_components(_levels(mask), hu, BOOK)
    expected_col = (3 * 1 + 4 * 1001 + 5 * 2001) / (1 + 1001 + 2001)
    assert_allclose(comps.centers_irc, [[4.0, 4.0, expected_col]])


def test_centres_match_the_books_per_label_center_of_mass():
    rng = np.random.default_rng(1)
    shape = (24, 40, 40)
    mask = ndimage.binary_dilation(rng.random(shape) > 0.985, structure=np.ones((3, 3, 3)))
    hu = rng.integers(-1200, 1500, size=shape).astype(np.int16)
    comps = group_components(_levels(mask), hu, BOOK)
    eroded = ndimage.binary_erosion(mask, structure=CROSS, iterations=1)
    labels, count = ndimage.label(eroded, structure=CROSS)
    assert len(comps) == count > 5
    weights = np.clip(hu, -1000, 1000).astype(np.float64) + 1001
    book = np.array(ndimage.center_of_mass(weights, labels=labels, index=np.arange(1, count + 1)))
    assert_allclose(np.sort(comps.centers_irc, axis=0), np.sort(book, axis=0), atol=1e-9)


def test_erosion_splits_blobs_joined_by_a_bridge():
    shape = (12, 12, 24)
    mask = _cube(shape, (3, 3, 2), 5) | _cube(shape, (3, 3, 12), 5)
    mask[5, 5, 7:12] = True  # one-voxel-thick bridge
    assert ndimage.label(mask)[1] == 1
    comps = group_components(_levels(mask), np.zeros(shape, np.int16), BOOK)
    assert len(comps) == 2
    # the bridge is eroded away; each 3×3×3 core keeps the face voxel the bridge meets (cols 6 and 12)
    assert_allclose(comps.centers_irc, [[5.0, 5.0, (27 * 4 + 6) / 28], [5.0, 5.0, (27 * 14 + 12) / 28]])


def test_grow_labels_restores_the_eroded_layer_only_inside_the_mask():
    mask = _cube((7, 7, 7), (1, 1, 1), 5)
    labels = np.zeros((7, 7, 7), np.uint16)
    labels[2:5, 2:5, 2:5] = 1
    grown = grow_labels(labels, mask)
    assert_array_equal(grown > 0, ndimage.binary_dilation(labels > 0, structure=CROSS) & mask)


def test_equivalent_diameter():
    volume = 4 / 3 * np.pi * 5.0**3  # a sphere of diameter 10 mm
    voxel = 0.5 * 0.8 * 1.25
    assert_allclose(equivalent_diameter_mm([volume / voxel], (1.25, 0.8, 0.5)), [10.0])


@pytest.mark.parametrize("method", METHODS)
def test_scipy_fallback_gives_the_same_components(monkeypatch, method):
    rng = np.random.default_rng(2)
    shape = (16, 30, 30)
    mask = ndimage.binary_dilation(rng.random(shape) > 0.98, structure=np.ones((3, 3, 3)))
    hu = rng.integers(-1000, 1000, size=shape).astype(np.int16)
    settings = GroupingSettings(method=method)
    fast = group_components(_levels(mask), hu, settings)
    assert len(fast) > 5
    monkeypatch.setattr(grouping, "cc3d", None)
    slow = group_components(_levels(mask), hu, settings)
    order_fast = np.lexsort(fast.centers_irc.T)
    order_slow = np.lexsort(slow.centers_irc.T)
    assert_allclose(fast.centers_irc[order_fast], slow.centers_irc[order_slow])
    assert_array_equal(fast.voxel_counts[order_fast], slow.voxel_counts[order_slow])


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_threshold_dependence(method):
    shape = (10, 10, 10)
    hu = np.zeros(shape, np.int16)
    settings = GroupingSettings(method=method)
    assert len(group_components(np.zeros(shape, np.uint8), hu, settings)) == 0
    levels = np.zeros(shape, np.uint8)
    levels[2:7, 2:7, 2:7] = 100  # p ~ 0.39
    assert len(group_components(levels, hu, settings)) == 0
    assert len(group_components(levels, hu, GroupingSettings(seg_threshold=0.3, method=method))) == 1


def test_in_plane_erosion_matches_scipy_with_a_plane_cross():
    rng = np.random.default_rng(1)
    mask = rng.random((7, 11, 10)) > 0.3
    plane_cross = np.zeros((3, 3, 3), bool)
    plane_cross[1] = ndimage.generate_binary_structure(2, 1)
    expected = ndimage.binary_erosion(mask, structure=plane_cross, iterations=1, border_value=0)
    assert_array_equal(erode_cross(mask, in_plane=True), expected)
    assert_array_equal(erode_cross(torch.from_numpy(mask), in_plane=True).numpy(), expected)


def test_a_two_slice_nodule_survives_only_the_in_plane_erosion():
    shape = (12, 20, 20)
    mask = np.zeros(shape, bool)
    mask[5:7, 6:11, 6:11] = True  # 5×5 voxels on two slices: a small nodule on thick slices
    mask[1, 1, 1] = True  # a speck
    hu = np.zeros(shape, np.int16)
    assert len(group_components(_levels(mask), hu, BOOK)) == 0  # SPEC §4: the 3D cross removes it
    comps = group_components(_levels(mask), hu, GroupingSettings(method="components", erosion="in-plane"))
    assert len(comps) == 1, "in-plane erosion keeps the nodule and still drops the speck"
    assert_allclose(comps.centers_irc, [[5.5, 8.0, 8.0]])
    assert comps.voxel_counts[0] == 2 * (25 - 4)  # grown back one layer: each slice but its 4 corners
    none = group_components(_levels(mask), hu, GroupingSettings(method="components", erosion="none"))
    assert len(none) == 2 and sorted(none.voxel_counts.tolist()) == [1, 50]
    with pytest.raises(ValueError, match="erosion"):
        GroupingSettings(erosion="2d")
