"""Phantom series: shape and geometry, determinism, HU per tissue, anatomy proportions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.io.volume import CtVolume
from engine.phantom import PRESETS, Tissue, generate_series, plan_series, series_uid
from engine.phantom.config import sample_config, stream
from engine.phantom.patient import sample_patient
from engine.phantom.physics import recon_circle
from engine.phantom.truth import PhantomTruth


@pytest.fixture(scope="module")
def small_series() -> list[tuple[CtVolume, PhantomTruth]]:
    return [generate_series(seed, "small") for seed in (0, 1, 2, 3)]


def test_small_preset_shape_and_geometry(small_series):
    for ct, truth in small_series:
        assert ct.shape == (64, 160, 160)
        assert ct.hu.dtype == np.int16
        sx, sy, sz = ct.geometry.spacing_xyz
        assert sx == sy and 1.8 <= sx <= 2.9
        assert 3.5 <= sz <= 6.5  # ~300 mm of chest in 64 slices
        assert truth.labels.shape == ct.shape and truth.labels.dtype == np.uint8
        assert ct.series_uid == truth.series_uid == series_uid(truth.seed)
        assert ct.series_uid.startswith("2.25.") and len(ct.series_uid) <= 64


def test_standard_preset_scan_settings_are_luna_like():
    """Scan configurations only (no voxels): matrix, spacings, slice counts, body length, flipped series."""
    flips = 0
    for seed in range(40):
        c = sample_config(seed, "standard", sample_patient(stream(seed, "patient")))
        assert c.matrix == PRESETS["standard"].matrix == 512
        assert 0.55 <= c.spacing_xyz[0] <= 0.9
        assert 0.625 <= c.spacing_xyz[2] <= 2.5
        assert 100 <= c.n_slices <= 450
        assert 240.0 <= c.n_slices * c.spacing_xyz[2] <= 420.0
        flips += any(c.flip_xyz)
    assert 1 <= flips <= 15


def test_same_seed_gives_identical_bytes():
    ct_a, truth_a = generate_series(7, "small")
    ct_b, truth_b = generate_series(7, "small")
    assert ct_a.hu.tobytes() == ct_b.hu.tobytes()
    assert truth_a.labels.tobytes() == truth_b.labels.tobytes()
    assert ct_a.geometry == ct_b.geometry
    assert truth_a.nodules == truth_b.nodules
    assert truth_a.candidates == truth_b.candidates
    ct_c, _ = generate_series(8, "small")
    assert ct_c.hu.tobytes() != ct_a.hu.tobytes()


def _stats(ct: CtVolume, truth: PhantomTruth, tissue: Tissue, erode: int = 1) -> tuple[float, float, int]:
    mask = ndimage.binary_erosion(truth.labels == tissue, iterations=erode)
    values = ct.hu[mask].astype(np.float64)
    return float(values.mean()), float(values.std()), int(mask.sum())


@pytest.mark.parametrize(
    "tissue, low, high",
    [
        (Tissue.LUNG, -900.0, -780.0),
        (Tissue.FAT, -125.0, -75.0),
        (Tissue.MUSCLE, 25.0, 65.0),
        (Tissue.HEART, 25.0, 55.0),
        (Tissue.LIVER, 40.0, 75.0),
        (Tissue.BONE_TRABECULAR, 150.0, 400.0),
    ],
)
def test_hu_per_tissue_in_realistic_range(small_series, tissue, low, high):
    for ct, truth in small_series:
        mean, _, count = _stats(ct, truth, tissue)
        assert count > 100, f"too few {tissue.name} voxels"
        assert low <= mean <= high, f"{tissue.name} mean {mean:.1f} HU outside [{low}, {high}]"


def test_air_bone_and_noise(small_series):
    for ct, truth in small_series:
        inside_circle = ~recon_circle(*ct.shape[1:])
        air = ndimage.binary_erosion(truth.labels == Tissue.AIR, iterations=2) & inside_circle
        assert abs(float(ct.hu[air].mean()) + 1000.0) < 20.0
        # cortical bone is thin: take the densest voxels of the ribs and spine
        bone = ct.hu[truth.labels == Tissue.BONE_CORTICAL]
        assert np.percentile(bone, 90) > 300
        # homogeneous soft tissue: spread is the scanner noise (10-30 HU)
        _, sd, _ = _stats(ct, truth, Tissue.HEART, erode=2)
        assert 0.7 * truth.noise_sigma <= sd <= 1.3 * truth.noise_sigma + 3.0
        assert 10.0 <= truth.noise_sigma <= 30.0


def test_lungs_fill_a_realistic_share_of_the_scan(small_series):
    fractions = [truth.lung_fraction() for _, truth in small_series]
    assert 0.10 <= float(np.mean(fractions)) <= 0.20
    assert min(fractions) > 0.07 and max(fractions) < 0.25


def test_body_fills_most_of_the_field_of_view(small_series):
    for ct, truth in small_series:
        body = (truth.labels != Tissue.AIR) & (truth.labels != Tissue.TABLE)
        middle = body[ct.shape[0] // 2]
        cols = np.flatnonzero(middle.any(axis=0))
        assert (cols[-1] - cols[0] + 1) / ct.shape[2] > 0.75


def test_lungs_taper_towards_the_apex(small_series):
    for ct, truth in small_series:
        lung = truth.labels == Tissue.LUNG
        if truth.flipped_xyz[2]:
            lung = lung[::-1]
        area = lung.sum(axis=(1, 2))
        levels = np.flatnonzero(area)
        top, bottom = levels[-1], levels[0]
        span = top - bottom
        widest = area[bottom + span // 4 : bottom + 3 * span // 4].max()
        near_apex = area[top - max(1, span // 10)]
        assert near_apex < 0.6 * widest
        assert area[top] < 0.15 * widest
        # both lungs: lung voxels on both sides of the midline at mid height
        mid = lung[(top + bottom) // 2]
        cols = np.flatnonzero(mid.any(axis=0))
        assert cols[0] < ct.shape[2] // 2 < cols[-1]


def test_overrides_are_checked():
    with pytest.raises(TypeError, match="unknown phantom override"):
        plan_series(0, "small", not_a_field=1)
    with pytest.raises(ValueError, match="unknown phantom preset"):
        plan_series(0, "huge")


@pytest.mark.slow
def test_standard_series_is_512_square_with_int16_hu():
    ct, truth = generate_series(11)
    assert ct.shape[1:] == (512, 512) and 100 <= ct.shape[0] <= 450
    assert ct.hu.dtype == np.int16
    assert 0.08 <= truth.lung_fraction() <= 0.22
    mean, _, _ = _stats(ct, truth, Tissue.LUNG, erode=2)
    assert -900 <= mean <= -780
