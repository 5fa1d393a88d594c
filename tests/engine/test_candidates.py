"""The ``peaks`` grouping on closed-form masks: split merged blobs, merge fragments, keep thin nodules.

``peaks`` is the default grouping; the book's ``components`` method, contrasted with it here, is always
asked for by name (``BOOK``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from engine.detection.grouping import group_components
from engine.detection.settings import GroupingSettings

PEAKS = GroupingSettings(method="peaks")
#: SPEC §4's (the book's) grouping: eroded connected components at their HU-weighted centre.
BOOK = GroupingSettings(method="components")
#: The book's labelling without its erosion: the plain connected components of the thresholded mask.
BOOK_NO_EROSION = GroupingSettings(method="components", erosion="none")


def _levels(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 255, 0).astype(np.uint8)


def _ball(shape, center, radius) -> np.ndarray:
    i, r, c = np.indices(shape)
    return (i - center[0]) ** 2 + (r - center[1]) ** 2 + (c - center[2]) ** 2 <= radius**2


def test_a_nodule_touching_a_vessel_is_split_and_centred_on_the_sphere():
    shape = (30, 40, 64)
    i, r, c = np.indices(shape)
    sphere = _ball(shape, (15, 20, 20), 5.5)
    vessel = ((i - 15) ** 2 + (r - 21) ** 2 <= 2.2**2) & (c >= 24) & (c < 62)  # touches the sphere at c = 24
    mask = sphere | vessel
    hu = np.zeros(shape, np.int16)
    book = group_components(_levels(mask), hu, BOOK)
    assert len(book) == 1 and np.abs(book.centers_irc[0] - [15, 20, 20]).max() > 4  # centre pulled into the vessel
    comps = group_components(_levels(mask), hu, PEAKS)
    assert len(comps) >= 2
    distance = np.linalg.norm(comps.centers_irc - [15, 20, 20], axis=1)
    assert distance.min() <= 1.0
    nodule = int(np.argmin(distance))
    assert np.sort(distance)[1] >= 5.0, "one candidate per lesion"
    assert comps.voxel_counts.sum() == mask.sum(), "every thresholded voxel belongs to a candidate"
    assert comps.voxel_counts[nodule] >= 0.9 * sphere.sum()


def test_two_fragments_of_one_lesion_become_one_finding():
    shape = (24, 32, 32)
    lesion = _ball(shape, (12, 16, 16), 6.0)
    i, _, _ = np.indices(shape)
    mask = lesion & (i != 15)  # the segmentation missed one slice: the lesion's cap is a separate fragment
    hu = np.zeros(shape, np.int16)
    assert len(group_components(_levels(mask), hu, BOOK_NO_EROSION)) == 2
    comps = group_components(_levels(mask), hu, PEAKS)
    assert len(comps) == 1
    # the centre is the larger fragment's core, inside the lesion (radius 6), not between the two
    assert np.linalg.norm(comps.centers_irc[0] - [12, 16, 16]) < 2.5
    assert comps.voxel_counts[0] == mask.sum()
    assert_array_equal(comps.bbox_lo[0], [6, 10, 10])
    assert_array_equal(comps.bbox_hi[0], [19, 23, 23])


def test_a_fragment_cut_off_a_nodules_edge_is_absorbed():
    shape = (30, 30, 40)
    nodule = _ball(shape, (15, 15, 15), 6.0)  # reaches column 21
    fragment = np.zeros(shape, bool)
    fragment[14:16, 14:16, 23:25] = True  # 8 voxels one voxel beyond the edge: its centre 8.5 mm away
    assert np.linalg.norm(np.array([14.5, 14.5, 23.5]) - 15) > max(PEAKS.merge_mm, 6.0)  # beyond either reach
    hu = np.zeros(shape, np.int16)
    assert len(group_components(_levels(nodule | fragment), hu, BOOK_NO_EROSION)) == 2
    comps = group_components(_levels(nodule | fragment), hu, PEAKS)
    assert len(comps) == 1, "one finding per lesion"
    assert_allclose(comps.centers_irc[0], [15, 15, 15], atol=1e-9)  # the nodule keeps its centre
    assert comps.voxel_counts[0] == nodule.sum() + 8


def test_a_small_nodule_beside_a_vessel_is_not_absorbed():
    shape = (30, 30, 40)
    i, r, c = np.indices(shape)
    vessel = ((i - 15) ** 2 + (r - 10) ** 2 <= 2.5**2) & (c >= 2) & (c < 38)  # 36 mm long, 5 mm wide
    nodule = _ball(shape, (15, 16, 20), 3.0)  # 6 mm, one voxel of background between it and the vessel
    comps = group_components(_levels(vessel | nodule), np.zeros(shape, np.int16), PEAKS)
    distance = np.linalg.norm(comps.centers_irc - [15, 16, 20], axis=1)
    assert distance.min() < 1e-9
    assert comps.voxel_counts[np.argmin(distance)] == nodule.sum()
    assert len(comps) >= 3, "the vessel is split into pieces of its own"


def test_two_lesions_further_apart_than_the_merge_distance_stay_apart():
    shape = (16, 24, 48)
    mask = _ball(shape, (8, 12, 10), 3.0) | _ball(shape, (8, 12, 30), 3.0)
    comps = group_components(_levels(mask), np.zeros(shape, np.int16), PEAKS)
    assert_allclose(comps.centers_irc, [[8, 12, 10], [8, 12, 30]], atol=1e-9)
    merged = group_components(_levels(mask), np.zeros(shape, np.int16), GroupingSettings(method="peaks", merge_mm=25))
    assert len(merged) == 1


def test_a_two_slice_nodule_survives_and_a_speck_does_not():
    shape = (12, 20, 20)
    mask = np.zeros(shape, bool)
    mask[5:7, 6:11, 6:11] = True  # 5×5 voxels on two slices of 2.5 mm
    mask[1, 1, 1] = True  # a speck
    hu = np.zeros(shape, np.int16)
    spacing = (2.5, 0.7, 0.7)
    assert len(group_components(_levels(mask), hu, BOOK)) == 0  # the book's 3D cross deletes it
    comps = group_components(_levels(mask), hu, PEAKS, spacing)
    assert len(comps) == 1
    assert_allclose(comps.centers_irc, [[5.5, 8.0, 8.0]])
    assert comps.voxel_counts[0] == 50


def test_the_centre_is_probability_weighted():
    shape = (9, 9, 9)
    levels = np.zeros(shape, np.uint8)
    levels[4, 4, 3:6] = [200, 255, 255]
    comps = group_components(levels, np.zeros(shape, np.int16), GroupingSettings(method="peaks", min_diameter_mm=0))
    expected = (3 * 200 + 4 * 255 + 5 * 255) / (200 + 2 * 255)
    assert_allclose(comps.centers_irc, [[4, 4, expected]])


def test_peaks_is_the_default_and_components_is_unchanged():
    from scipy import ndimage

    assert GroupingSettings().method == "peaks" and GroupingSettings() == PEAKS
    rng = np.random.default_rng(3)
    shape = (20, 30, 30)
    spacing = (2.5, 0.7, 0.7)
    levels = (rng.random(shape) * 255).astype(np.uint8)
    hu = rng.integers(-1000, 400, size=shape).astype(np.int16)
    names = ("centers_irc", "voxel_counts", "bbox_lo", "bbox_hi")
    # no settings given: the peaks candidates
    default = group_components(levels, hu, None, spacing)
    peaks = group_components(levels, hu, PEAKS, spacing)
    for name in names:
        assert_array_equal(getattr(default, name), getattr(peaks, name))
    # components, asked for by name: the book's eroded components, untouched by the peaks-only fields and the spacing
    book = group_components(levels, hu, BOOK)
    explicit = group_components(levels, hu, GroupingSettings(method="components", merge_mm=9.0, smooth_mm=3.0,
                                                             min_diameter_mm=7.0), spacing)
    for name in names:
        assert_array_equal(getattr(book, name), getattr(explicit, name))
    cross = ndimage.generate_binary_structure(3, 1)
    eroded = ndimage.binary_erosion(levels > 127, structure=cross, border_value=0)
    assert len(book) == ndimage.label(eroded, structure=cross)[1] > 1
    assert len(default) != len(book), "the default is no longer the book's grouping"


def test_settings_check_the_new_fields():
    # both methods are named; peaks, the default, shows its own fields and hides the erosion it does not use
    assert GroupingSettings().describe() == (
        "threshold 0.50, method peaks, merge mm 5.00, smoothing mm 2.00, min diameter mm 2.00"
    )
    assert PEAKS.describe() == GroupingSettings().describe()
    assert GroupingSettings(erosion="none").describe() == (
        "threshold 0.50, erosion none, method peaks, merge mm 5.00, smoothing mm 2.00, min diameter mm 2.00"
    )
    # components shows its erosion and hides the peaks-only fields while they are at their defaults
    assert BOOK.describe() == "threshold 0.50, erosion 3d, method components"
    assert GroupingSettings(method="components", merge_mm=7).describe() == (
        "threshold 0.50, erosion 3d, method components, merge mm 7.00"
    )
    assert GroupingSettings(merge_mm=7).non_defaults() == {"merge_mm": 7.0}
    assert BOOK.non_defaults() == {"method": "components"}
    for bad in ({"method": "watershed"}, {"merge_mm": 0}, {"smooth_mm": -1}, {"min_diameter_mm": float("nan")}):
        with pytest.raises(ValueError):
            GroupingSettings(**bad)


def _field(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Probability levels of a smooth random field: blobs and branches, some merged, some saturated at 255."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    p = ndimage.gaussian_filter(rng.random(shape), (0.8, 2.5, 2.5))
    p = np.clip((p - p.min()) / (p.max() - p.min()) * 3 - 1.2, 0, 1)
    return np.round(p * 255).astype(np.uint8)


@pytest.mark.parametrize("spacing", [(2.5, 0.7, 0.7), (1.0, 0.69465, 0.69465), (0.8, 0.8, 0.8)])
def test_the_sparse_depth_is_the_exact_distance_transform(spacing):
    from scipy import ndimage

    from engine.detection.candidates import _depth_mm

    mask = _field(4, (14, 30, 34)) > 127
    mask[0, :6, :6] = True  # a block against the box's border: outside the array counts as outside
    points = np.argwhere(mask)
    expected = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1][mask]
    assert_allclose(_depth_mm(points, np.asarray(spacing)), expected, rtol=1e-12)
    shifted = _depth_mm(points + [7, 3, 11], np.asarray(spacing))
    assert_array_equal(shifted, _depth_mm(points, np.asarray(spacing)))


def test_the_candidates_are_those_of_the_per_component_implementation():
    """Values from the implementation before the speed-up (a filter per component box, depth from a k-d
    tree over the outer shell; commit 29b0132) with today's merge rule, on a field with merged, split and
    saturated components: the same seeds, pieces, cores and merges (the spacing is exact in binary, so both
    depths agree to the bit). Two specks beside larger pieces are absorbed as fragments (23 before that rule)."""
    levels = _field(0, (12, 32, 40))
    smoothed_1mm = replace(PEAKS, smooth_mm=1.0)  # the values were recorded with 1 mm smoothing, the default then
    comps = group_components(levels, np.zeros(levels.shape, np.int16), smoothed_1mm, (2.5, 0.75, 0.75))
    assert_array_equal(comps.voxel_counts, [31, 84, 102, 36, 11, 133, 25, 82, 13, 236, 66, 573, 128, 48, 43, 54, 54,
                                            106, 11, 24, 23])
    assert_allclose(comps.centers_irc[[0, 3, 7, 10, 13, 20]],
                    [[0.0, 1.5193, 8.2022], [0.0, 9.395, 30.7664], [6.0398, 23.9517, 1.1123],
                     [4.9821, 15.1523, 16.1344], [6.9819, 11.5764, 2.0679], [11.0, 1.1268, 25.2337]], atol=1e-4)


def test_the_candidates_do_not_depend_on_where_the_box_lies():
    """Depths are exact and translation-free, so ties between voxels of saturated probability break the
    same way wherever the thresholded box starts (the k-d tree's rounding depended on the coordinates)."""
    levels = _field(1, (24, 48, 48))
    spacing = (2.5, 0.7, 0.7)
    hu = np.zeros((34, 66, 80), np.int16)
    alone = group_components(levels, hu[:24, :48, :48], PEAKS, spacing)
    placed = np.zeros(hu.shape, np.uint8)
    placed[5:29, 7:55, 19:67] = levels
    placed[0, 0, 0] = placed[-1, -1, -1] = 255  # specks far away widen the box; they are dropped (under 2 mm)
    moved = group_components(placed, hu, PEAKS, spacing)
    assert len(alone) == len(moved) > 50
    assert_array_equal(alone.voxel_counts, moved.voxel_counts)
    assert_allclose(alone.centers_irc + [5, 7, 19], moved.centers_irc, atol=1e-9)
