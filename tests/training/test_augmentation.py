"""Augmentation properties: mirrors map voxels where expected, image and label stay aligned, noise σ."""

from __future__ import annotations

import math

import pytest
import torch

from training.augmentation import (
    AugmentConfig,
    SegmentationAugmentation,
    affine_matrices,
    augment_volumes,
    random_crops_2d,
    warp,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identity_when_everything_is_off() -> None:
    volumes = torch.randn(2, 1, 8, 12, 10)
    out = augment_volumes(volumes, AugmentConfig(), _generator())
    assert torch.equal(out, volumes)


def test_a_mirror_maps_a_known_voxel_to_its_mirror_image() -> None:
    volume = torch.zeros(1, 1, 8, 12, 10)
    volume[0, 0, 1, 2, 3] = 1000.0
    # grid axes are (col, row, index): mirror col and index, keep row
    theta = torch.tensor([[[-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, -1.0, 0]]])
    out = warp(volume, theta)
    assert out[0, 0, 8 - 1 - 1, 2, 10 - 1 - 3] == pytest.approx(1000.0)
    assert out.sum() == pytest.approx(1000.0)


def test_random_flips_are_exact_mirrors() -> None:
    volumes = torch.arange(4 * 6 * 8, dtype=torch.float32).reshape(1, 1, 4, 6, 8).repeat(16, 1, 1, 1, 1)
    out = augment_volumes(volumes, AugmentConfig(flip=True), _generator(3))
    flips_seen = set()
    for sample in out[:, 0]:
        matched = [f for f in _all_flips() if torch.allclose(sample, torch.flip(volumes[0, 0], f), atol=1e-3)]
        assert matched, "a flipped sample is not an exact mirror image of the input"
        flips_seen.add(matched[0])
    assert len(flips_seen) > 2  # the flips vary between samples


def _all_flips() -> list[tuple[int, ...]]:
    return [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


def test_rotation_acts_in_the_row_col_plane_only() -> None:
    theta = affine_matrices(64, 3, AugmentConfig(rotate=True), _generator(), "cpu")
    assert torch.allclose(theta[:, 2, :3], torch.tensor([0.0, 0.0, 1.0]).expand(64, 3))
    assert torch.allclose(theta[:, :2, 2], torch.zeros(64, 2))
    det = torch.linalg.det(theta[:, :3, :3])
    assert torch.allclose(det, torch.ones(64), atol=1e-5)
    angles = torch.atan2(theta[:, 1, 0], theta[:, 0, 0])
    assert angles.min() < -math.pi / 2 and angles.max() > math.pi / 2


def test_a_quarter_turn_keeps_a_centred_square_and_turns_a_bar() -> None:
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 2:7] = 1.0  # horizontal bar through the centre
    theta = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])
    out = warp(image, theta)
    assert torch.allclose(out[0, 0, 2:7, 4], torch.ones(5), atol=1e-5)
    assert out.sum() == pytest.approx(5.0, abs=1e-4)


def test_offset_and_scale_stay_within_their_magnitudes() -> None:
    theta = affine_matrices(500, 3, AugmentConfig(offset=0.1, scale=0.2), _generator(), "cpu")
    shifts, diag = theta[:, :, 3], torch.diagonal(theta[:, :, :3], dim1=1, dim2=2)
    assert shifts.abs().max() <= 0.1 and shifts.abs().max() > 0.08
    assert diag.min() >= 0.8 and diag.max() <= 1.2 and (diag.max() - diag.min()) > 0.3


@pytest.mark.parametrize("sigma", [5.0, 25.0])
def test_noise_has_the_asked_sigma(sigma: float) -> None:
    volumes = torch.full((8, 1, 16, 24, 24), -500.0)
    out = augment_volumes(volumes, AugmentConfig(noise=sigma), _generator())
    residual = out - volumes
    assert residual.mean().item() == pytest.approx(0.0, abs=0.05 * sigma)
    assert residual.std().item() == pytest.approx(sigma, rel=0.03)


def test_segmentation_warp_keeps_image_and_label_aligned() -> None:
    image = torch.full((6, 7, 32, 32), -900.0)
    label = torch.zeros(6, 1, 32, 32, dtype=torch.bool)
    image[:, :, 10:18, 12:22] = 100.0
    label[:, :, 10:18, 12:22] = True
    augment = SegmentationAugmentation(AugmentConfig(flip=True, offset=0.03, scale=0.2, rotate=True), _generator(5))
    out_image, out_label = augment(image, label)
    assert out_label.dtype == torch.bool and out_label.shape == label.shape
    for k in range(6):
        bright = out_image[k, 3] > -400.0
        assert out_label[k, 0].sum() > 20
        agreement = (bright == out_label[k, 0]).float().mean()
        assert agreement > 0.97  # only resampled edge pixels may differ
        assert torch.equal(out_image[k, 0] > -400.0, bright)  # every channel got the same warp


def test_segmentation_noise_goes_to_the_image_only() -> None:
    image = torch.zeros(2, 7, 16, 16)
    label = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    label[:, :, 4:8, 4:8] = True
    out_image, out_label = SegmentationAugmentation(AugmentConfig(noise=25.0), _generator())(image, label)
    assert torch.equal(out_label, label)
    assert out_image.std() == pytest.approx(25.0, rel=0.1)


def test_random_crops_cut_the_same_window_from_image_and_label() -> None:
    image = torch.arange(96 * 96, dtype=torch.float32).reshape(1, 1, 96, 96).repeat(5, 7, 1, 1)
    label = image[:, :1] % 7 == 0
    out_image, out_label = random_crops_2d(image, label, 64, _generator(2))
    assert out_image.shape == (5, 7, 64, 64) and out_label.shape == (5, 1, 64, 64)
    for k in range(5):
        top, left = divmod(int(out_image[k, 0, 0, 0].item()), 96)
        assert 0 <= top <= 32 and 0 <= left <= 32
        assert torch.equal(out_image[k, 0], image[k, 0, top : top + 64, left : left + 64])
        assert torch.equal(out_label[k, 0], label[k, 0, top : top + 64, left : left + 64])
