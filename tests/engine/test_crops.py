"""Crop placement (shift back inside, padding) and segmentation context stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from engine.crops import (
    classifier_input,
    context_indices,
    context_slices,
    context_slices_torch,
    crop_starts,
    gather_crops,
    gather_crops_torch,
)


@pytest.mark.parametrize(
    "center, expected",
    [
        ((50.0, 100.0, 100.0), (34, 76, 76)),  # interior: round(c - w/2)
        ((50.4, 100.5, 99.5), (34, 77, 76)),  # halves round up
        ((3.0, 10.0, 190.0), (0, 0, 152)),  # shifted back inside at both ends
        ((-20.0, 500.0, 0.0), (0, 152, 0)),  # centre outside the volume
    ],
)
def test_crop_starts(center, expected):
    assert tuple(crop_starts(center, (32, 48, 48), (80, 200, 200))) == expected


def test_crop_starts_for_a_volume_smaller_than_the_crop():
    starts = crop_starts([[5.0, 10.0, 20.0], [0.0, 0.0, 0.0]], (32, 48, 48), (10, 200, 30))
    # index axis: 10 < 32 -> start in [-22, 0]; col axis: 30 < 48 -> start in [-18, 0]
    assert_array_equal(starts, [[-11, 0, -4], [-16, 0, -18]])


def _volume(shape=(40, 60, 70), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1500, 2000, size=shape).astype(np.int16)


def test_gather_matches_slicing_and_torch():
    hu = _volume()
    centers = np.array([[20.0, 30.0, 35.0], [1.0, 2.0, 69.0], [39.0, 59.0, 0.0]])
    crops = gather_crops(hu, centers, (8, 10, 12))
    assert crops.shape == (3, 8, 10, 12) and crops.dtype == np.int16
    for crop, start in zip(crops, crop_starts(centers, (8, 10, 12), hu.shape)):
        i, r, c = start
        assert_array_equal(crop, hu[i : i + 8, r : r + 10, c : c + 12])
    starts = torch.as_tensor(crop_starts(centers, (8, 10, 12), hu.shape))
    assert_array_equal(gather_crops_torch(torch.from_numpy(hu), starts, (8, 10, 12)).numpy(), crops)


def test_gather_pads_with_air_when_the_volume_is_small():
    hu = _volume((4, 60, 5))
    crops = gather_crops(hu, [[2.0, 30.0, 2.0]], (8, 10, 12))
    start = crop_starts([2.0, 30.0, 2.0], (8, 10, 12), hu.shape)
    assert tuple(start) == (-2, 25, -4)
    crop = crops[0]
    assert_array_equal(crop[2:6, :, 4:9], hu[:, 25:35, :])
    assert (crop[:2] == -1000).all() and (crop[6:] == -1000).all()
    assert (crop[:, :, :4] == -1000).all() and (crop[:, :, 9:] == -1000).all()
    starts = torch.as_tensor(start[None])
    assert_array_equal(gather_crops_torch(torch.from_numpy(hu), starts, (8, 10, 12)).numpy(), crops)


def test_classifier_input_clips_and_adds_a_channel():
    x = classifier_input(torch.tensor([[[[-3000, 0, 5000]]]], dtype=torch.int16))
    assert x.shape == (1, 1, 1, 1, 3) and x.dtype == torch.float32
    assert x.flatten().tolist() == [-1000.0, 0.0, 1000.0]


def test_context_indices_repeat_edge_slices():
    assert_array_equal(
        context_indices([0, 5, 9], 10),
        [[0, 0, 0, 0, 1, 2, 3], [2, 3, 4, 5, 6, 7, 8], [6, 7, 8, 9, 9, 9, 9]],
    )
    assert_array_equal(context_indices([0], 1, context=2), [[0, 0, 0, 0, 0]])


def test_context_slices_numpy_and_torch_agree():
    hu = _volume((12, 20, 24))
    window = (slice(4, 16), slice(0, 20))
    stack = context_slices(hu, [0, 6, 11], roi=window)
    assert stack.shape == (3, 7, 12, 20) and stack.dtype == np.float32
    assert stack.min() >= -1000 and stack.max() <= 1000
    assert_array_equal(stack[1, 3], np.clip(hu[6, 4:16, 0:20], -1000, 1000))
    assert_array_equal(stack[0, 0], stack[0, 3])  # slice -3 repeats slice 0
    torch_stack = context_slices_torch(torch.from_numpy(hu), torch.tensor([0, 6, 11]), roi=window)
    assert_array_equal(torch_stack.numpy(), stack)
