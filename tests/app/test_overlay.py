"""Overlay lookup tables and candidate crops (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from app.overlay import crop_around, crop_plane, keep_boxes, outline_u8, overlay_lut, probability_u8
from app.planes import Plane, plane_layout
from app.windowing import WindowLevel
from engine.geometry import Geometry


def test_probability_u8_accepts_levels_and_floats() -> None:
    levels = np.array([[0, 128, 255]], dtype=np.uint8)
    assert probability_u8(levels) is not None and probability_u8(levels).dtype == np.uint8
    assert_array_equal(probability_u8(levels), levels)
    floats = np.array([[0.0, 0.5, 1.0, 1.5]], dtype=np.float16)
    assert_array_equal(probability_u8(floats), [[0, 128, 255, 255]])


@pytest.mark.parametrize("seed", range(6))
def test_an_outline_cropped_around_its_boxes_equals_the_whole_slice_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    levels = np.zeros((40, 50), dtype=np.uint8)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        v0, u0 = int(rng.integers(0, 36)), int(rng.integers(0, 46))
        v1, u1 = v0 + int(rng.integers(2, 12)), u0 + int(rng.integers(2, 12))
        levels[v0:v1, u0:u1] = rng.integers(0, 256, size=levels[v0:v1, u0:u1].shape)  # clipped at the border
        boxes.append((v0, v1, u0, u1))
    levels[rng.random(levels.shape) < 0.7] = 255  # dense probability around and outside the boxes too
    whole = keep_boxes(outline_u8(levels, 0.5), boxes)
    v0, v1, u0, u1 = crop_around(boxes, levels.shape)
    shifted = [(a - v0, b - v0, c - u0, d - u0) for a, b, c, d in boxes]
    cropped = keep_boxes(outline_u8(levels[v0:v1, u0:u1], 0.5), shifted)
    assert_array_equal(cropped, whole[v0:v1, u0:u1])
    outside = whole.copy()
    outside[v0:v1, u0:u1] = 0
    assert not outside.any() and whole.any()  # the crop holds all there is to draw


def test_overlay_lut_modes() -> None:
    prob = overlay_lut("probability", 0.5)
    assert prob.shape == (256, 4) and prob.dtype == np.uint8
    assert prob[20, 3] == 0 and prob[255, 3] == 255 and np.all(np.diff(prob[:, 3].astype(int)) >= 0)
    mask = overlay_lut("mask", 0.3)
    level = int(np.floor(0.3 * 255))  # 76: voxels with level > 76 are segmented at 0.3
    assert mask[level, 3] == 0 and mask[level + 1, 3] == 255
    assert not overlay_lut("off", 0.5)[:, 3].any()
    with pytest.raises(ValueError, match="unknown overlay mode"):
        overlay_lut("sparkle", 0.5)


def test_crop_is_centred_windowed_and_padded() -> None:
    hu = np.full((10, 20, 30), -1000, dtype=np.int16)
    hu[5, 8, 12] = 1000
    geometry = Geometry((0, 0, 0), (1.0, 1.0, 2.0))
    axial = plane_layout(geometry, hu.shape, Plane.AXIAL)
    crop = crop_plane(hu, axial, (5, 8, 12), 10.0, WindowLevel(400, 40))
    assert crop.shape == (11, 11) and crop[5, 5] == 255 and crop.sum() == 255
    edge = crop_plane(hu, axial, (5, 0, 0), 10.0, WindowLevel(400, 40))  # half of it lies outside: black
    assert edge.shape == (11, 11) and not edge[:5, :].any() and not edge[:, :5].any()
    coronal = plane_layout(geometry, hu.shape, Plane.CORONAL)
    tall = crop_plane(hu, coronal, (5, 8, 12), 12.0, WindowLevel(400, 40))
    assert tall.shape == (7, 13) and tall[3, 6] == 255  # 2 mm slices: fewer rows for the same mm
    hu2 = hu.copy()
    hu2[6, 8, 12] = 1000  # one slice up (superior) shows above the centre in the coronal crop
    assert crop_plane(hu2, coronal, (5, 8, 12), 12.0, WindowLevel(400, 40))[2, 6] == 255


def test_outline_surrounds_the_mask_without_covering_it() -> None:
    levels = np.zeros((7, 8), dtype=np.uint8)
    levels[1:6, 2:7] = 200  # 5×5 block, p ≈ 0.78
    edge = outline_u8(levels, 0.5)
    assert edge.dtype == np.uint8 and set(np.unique(edge)) == {0, 255}
    assert edge[1:6, 2:7].sum() == 255 * 16 and not edge[2:5, 3:6].any()  # ring of 16 pixels, hollow inside
    assert not outline_u8(levels, 0.8).any()  # nothing above 0.8
    full = np.full((3, 3), 255, dtype=np.uint8)
    assert outline_u8(full, 0.5).sum() == 255 * 8  # the image border closes the outline


def test_keep_boxes_clears_everything_outside_the_findings() -> None:
    image = np.full((10, 12), 255, dtype=np.uint8)
    kept = keep_boxes(image, [(2, 4, 3, 6)], margin=1)
    assert kept[1:5, 2:7].all() and kept.sum() == 255 * 4 * 5
    assert not keep_boxes(image, []).any()
    assert image.all()  # the input is not modified
