"""Ground-truth nodule masks (SPEC §1.3): grown boxes AND a density threshold."""

from __future__ import annotations

import numpy as np

from engine.masks import mask_slice_indices, nodule_box_radii, nodule_mask


def _lung(shape: tuple[int, int, int] = (20, 40, 40)) -> np.ndarray:
    return np.full(shape, -850, dtype=np.int16)


def test_a_dense_cube_gives_exactly_its_voxels() -> None:
    hu = _lung()
    hu[8:13, 15:24, 10:17] = 40  # 5 × 9 × 7 cube, centre (10, 19, 13)
    radii = nodule_box_radii(hu, (10, 19, 13))
    assert radii == (3, 5, 4)  # the first half-width at which a side leaves the cube
    mask = nodule_mask(hu, np.array([[10, 19, 13]]))
    assert np.array_equal(mask, hu > -700)


def test_growth_starts_at_two_even_for_a_faint_centre() -> None:
    hu = _lung()
    hu[10, 20, 20] = 0  # one dense voxel surrounded by lung
    hu[10, 20, 22] = 0  # dense, within the start box
    hu[10, 20, 24] = 0  # dense, outside it
    mask = nodule_mask(hu, np.array([[10, 20, 20]]))
    assert nodule_box_radii(hu, (10, 20, 20)) == (2, 2, 2)
    assert mask.sum() == 2 and mask[10, 20, 22] and not mask[10, 20, 24]


def test_growth_needs_both_sides_dense() -> None:
    hu = _lung()
    hu[10, 20, 20:30] = 50  # dense only to the right of the centre
    assert nodule_box_radii(hu, (10, 20, 20))[2] == 2
    mask = nodule_mask(hu, np.array([[10, 20, 20]]))
    assert mask[10, 20].nonzero()[0].tolist() == [20, 21, 22]


def test_dense_tissue_outside_any_box_is_not_nodule() -> None:
    hu = _lung()
    hu[:, :, :3] = 40  # chest wall
    hu[5:8, 10:13, 20:23] = 40
    mask = nodule_mask(hu, np.array([[6, 11, 21]]))
    assert mask.sum() == 27 and not mask[:, :, :3].any()


def test_boxes_are_clipped_at_the_volume_edge_and_outside_centres_ignored() -> None:
    hu = _lung((10, 12, 12))
    hu[0:3, 0:4, 0:4] = 30  # nodule in the corner
    mask = nodule_mask(hu, np.array([[1, 1, 1], [50, 50, 50], [-1, 3, 3]]))
    assert mask.sum() == 3 * 4 * 4
    assert mask_slice_indices(mask).tolist() == [0, 1, 2]


def test_no_centres_give_an_empty_mask() -> None:
    mask = nodule_mask(_lung(), np.zeros((0, 3), np.int64))
    assert not mask.any() and mask.dtype == bool
    assert mask_slice_indices(mask).size == 0
