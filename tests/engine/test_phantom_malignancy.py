"""Simulated readers and nodule populations against the real LUNA16 / LIDC figures."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.phantom.distributions import NODULES_PER_SCAN, sample_diameters, sample_nodule_count
from engine.phantom.malignancy import NoduleLook, ReaderModel, is_malignant, rate, simulate_population


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def population():
    looks, ratings = simulate_population(2500, seed=3)
    diameters = np.array([look.diameter_mm for look in looks])
    malignant = np.array([is_malignant(r) for r in ratings])
    return looks, ratings, diameters, malignant


def test_ratings_are_three_or_four_readers_from_one_to_five(population):
    _, ratings, _, _ = population
    assert {len(r) for r in ratings} == {3, 4}
    assert all(1 <= v <= 5 for r in ratings for v in r)
    share_four = np.mean([len(r) == 4 for r in ratings])
    assert 0.55 <= share_four <= 0.75  # real file: 763 of 1,182 rows have 4 ratings


def test_malignant_rule():
    assert is_malignant((4, 2, 4, 2)) and is_malignant((5, 4, 1))
    assert not is_malignant((4, 3, 3, 3)) and not is_malignant((3, 3, 3))


def test_malignant_share_like_the_real_file(population):
    _, _, _, malignant = population
    assert 0.26 <= malignant.mean() <= 0.38  # real: 378 / 1,182 = 32 %


def test_diameter_alone_gives_the_real_auc(population):
    """Real data: diameter-only ROC AUC 0.92 on all nodules, 0.90 on the book's validation split."""
    _, _, diameters, malignant = population
    assert 0.89 <= _auc(diameters, malignant) <= 0.935


def test_margin_and_solidity_add_information_beyond_size(population):
    looks, _, diameters, malignant = population
    model = ReaderModel()
    with_look = np.array([model.score(look) for look in looks])
    assert _auc(with_look, malignant) >= _auc(diameters, malignant) + 0.02
    # at the same size, spiculated nodules are malignant more often than round ones
    mid = (diameters >= 7.0) & (diameters < 14.0)
    spic = np.array([look.shape == "spiculated" for look in looks])
    round_ = np.array([look.shape == "spherical" and not look.calcified for look in looks])
    assert malignant[mid & spic].mean() > malignant[mid & round_].mean() + 0.15


def test_calcified_nodules_are_rated_benign():
    rng = np.random.default_rng(0)
    calcified = [rate(NoduleLook(8.0, "solid", "spherical", True), rng) for _ in range(200)]
    plain = [rate(NoduleLook(8.0, "solid", "spherical", False), rng) for _ in range(200)]
    assert np.mean([np.mean(r) for r in calcified]) < np.mean([np.mean(r) for r in plain]) - 1.0


def test_diameters_match_the_real_annotations(book_dir):
    with (book_dir / "annotations.csv").open(newline="") as handle:
        real = np.array([float(row["diameter_mm"]) for row in csv.DictReader(handle)])
    drawn = sample_diameters(np.random.default_rng(1), 20000)
    for q in (10, 25, 50, 75, 90):
        assert np.percentile(drawn, q) == pytest.approx(np.percentile(real, q), rel=0.1), q
    assert drawn.min() >= real.min() - 0.01 and drawn.max() <= real.max() + 0.5


def test_nodules_per_scan_like_the_real_counts():
    rng = np.random.default_rng(2)
    counts = np.array([sample_nodule_count(rng) for _ in range(4000)])
    assert counts.min() == 0 and counts.max() <= 8
    real = np.array(list(NODULES_PER_SCAN.values()), dtype=float)
    real_mean = float((np.array(list(NODULES_PER_SCAN)) * real).sum() / real.sum())
    assert counts.mean() == pytest.approx(real_mean, rel=0.08)
    assert np.mean(counts == 0) == pytest.approx(287 / 888, abs=0.03)
