"""engine.lesion_shape: Hessian shape features against closed forms, and the shape head."""

from __future__ import annotations

import numpy as np
import pytest

from engine.crops import CLASSIFIER_CROP, crop_starts, gather_crops
from engine.lesion_shape import (
    AIR_HU,
    FEATURE_NAMES,
    INPUT_NAMES,
    SIGMAS_MM,
    axis_sigmas_mm,
    features_at,
    head_inputs,
    shape_aware_at,
    shape_aware_probability,
    shape_features,
)

SPACING = (2.0, 1.0, 1.0)  # the crop reaches ±32 mm along the slices, ±24 mm in-plane
AMPLITUDE = 900.0


def _grid(shape=CLASSIFIER_CROP, spacing=SPACING, center=None):
    center = np.asarray(shape, float) / 2 - 0.5 if center is None else np.asarray(center, float)
    axes = [(np.arange(n) - c) * s for n, c, s in zip(shape, center, spacing)]
    return np.meshgrid(*axes, indexing="ij")


def _crop(tissue: np.ndarray) -> np.ndarray:
    return (AIR_HU + tissue)[None].astype(np.float32)


def _columns(features: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
    k = SIGMAS_MM.index(sigma)
    return features[0, 4 * k: 4 * k + 3], float(features[0, 4 * k + 3])


def test_a_gaussian_ball_has_the_closed_form_hessian_at_every_scale():
    s = 3.0  # the ball: A exp(-r² / 2s²) on air
    z, y, x = _grid()
    features = shape_features(_crop(AMPLITUDE * np.exp(-(z**2 + y**2 + x**2) / (2 * s * s))), SPACING)
    assert features.shape == (1, len(FEATURE_NAMES))
    for sigma in SIGMAS_MM:
        widths = axis_sigmas_mm(sigma, SPACING)  # sigma, or a voxel along a coarser axis
        t = s * s + widths**2  # G_s * G_w = G_sqrt(t) per axis
        peak = AMPLITUDE * np.prod(np.sqrt(s * s / t))
        eigenvalues, smoothed = _columns(features, sigma)
        # the second derivative along each axis at the centre: -peak / t, scale-normalised by sigma²
        np.testing.assert_allclose(eigenvalues, np.sort(-peak / t * sigma**2), rtol=0.01)
        assert smoothed == pytest.approx(AIR_HU + peak, rel=0.005)
    assert list(axis_sigmas_mm(1.0, SPACING)) == [2.0, 1.0, 1.0]


def test_a_tube_and_a_plate_are_told_from_a_ball():
    s = 2.0
    z, y, x = _grid()
    tube = shape_features(_crop(AMPLITUDE * np.exp(-(y**2 + x**2) / (2 * s * s))), SPACING)  # along the slices
    plate = shape_features(_crop(AMPLITUDE * np.exp(-(y**2) / (2 * s * s))), SPACING)
    sigma = 2.0
    t = s * s + sigma * sigma
    tube_values, _ = _columns(tube, sigma)
    plate_values, _ = _columns(plate, sigma)
    across_tube = -AMPLITUDE * (s * s / t) / t * sigma**2  # a 2-D Gaussian smoothed in 2-D
    across_plate = -AMPLITUDE * (s * s / t) ** 0.5 / t * sigma**2
    np.testing.assert_allclose(tube_values[:2], [across_tube] * 2, rtol=0.01)
    assert abs(tube_values[2]) < 1e-3 * abs(across_tube)  # flat along the tube
    assert plate_values[0] == pytest.approx(across_plate, rel=0.01)
    assert np.all(np.abs(plate_values[1:]) < 1e-3 * abs(across_plate))


def test_the_features_are_taken_at_the_fractional_centre():
    s = 3.0
    center = np.asarray(CLASSIFIER_CROP, float) / 2 - 0.5 + np.array([0.4, -0.3, 1.7])
    z, y, x = _grid(center=center)
    crop = _crop(AMPLITUDE * np.exp(-(z**2 + y**2 + x**2) / (2 * s * s)))
    shifted = shape_features(crop, SPACING, center[None])
    z0, y0, x0 = _grid()
    centred = shape_features(_crop(AMPLITUDE * np.exp(-(z0**2 + y0**2 + x0**2) / (2 * s * s))), SPACING)
    np.testing.assert_allclose(shifted, centred, rtol=1e-3, atol=0.05)


def test_features_at_measure_each_candidate_on_its_edge_shifted_crop():
    rng = np.random.default_rng(1)
    hu = rng.normal(-800, 150, (40, 70, 60)).astype(np.int16)
    centers = np.array([[20.0, 35.2, 30.7], [2.0, 3.0, 57.5], [38.6, 69.0, 1.0]])
    inside = centers - crop_starts(centers, CLASSIFIER_CROP, hu.shape)
    expected = shape_features(gather_crops(hu, centers, CLASSIFIER_CROP), SPACING, inside)
    np.testing.assert_allclose(features_at(hu, SPACING, centers), expected)
    assert features_at(hu, SPACING, np.zeros((0, 3))).shape == (0, len(FEATURE_NAMES))


def test_an_identity_head_gives_the_cnn_probability_and_the_inputs_are_named():
    p = np.array([0.01, 0.5, 0.93])
    features = np.zeros((3, len(FEATURE_NAMES)))
    inputs = head_inputs(p, features, np.array([1, 10, 1000]), (1.0, 1.0, 1.0))
    assert inputs.shape == (3, len(INPUT_NAMES))
    assert INPUT_NAMES[-2:] == ("ln_diameter_mm", "ln_voxels")
    np.testing.assert_allclose(inputs[:, -1], np.log([1, 10, 1000]))
    np.testing.assert_allclose(inputs[:, -2], np.log(np.cbrt(6 * np.array([1, 10, 1000]) / np.pi)))
    identity = [1.0] + [0.0] * (len(INPUT_NAMES) - 1) + [0.0]
    np.testing.assert_allclose(shape_aware_probability(identity, inputs), p)
    with pytest.raises(ValueError, match="coefficients"):
        shape_aware_probability([1.0, 0.0], inputs)


def test_without_a_head_or_a_region_the_cnn_probability_is_kept():
    hu = np.full((40, 60, 60), -900, np.int16)
    p = np.array([0.3])
    centers = np.array([[20.0, 30.0, 30.0]])
    coefficients = [0.0] * len(INPUT_NAMES) + [5.0]
    assert shape_aware_at(None, p, hu, SPACING, centers, np.array([10])) is p
    assert shape_aware_at(coefficients, p, hu, SPACING, centers, None) is p
    assert shape_aware_at(coefficients, p, hu, SPACING, centers, np.array([10]))[0] == pytest.approx(1 / (1 + np.exp(-5)))
    with pytest.raises(ValueError, match="spacing"):
        shape_features(np.zeros((1, 4, 4, 4)), (0.0, 1.0, 1.0))
