"""ROC curves, trapezoid AUC and the diameter baseline."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.metrics.roc import diameter_baseline_roc, roc_curve


def test_hand_computed_curve() -> None:
    roc = roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1])
    assert_allclose(roc.thresholds, [np.inf, 0.9, 0.8, 0.4, 0.1])
    assert_allclose(roc.tpr, [0, 0.5, 0.5, 1, 1])
    assert_allclose(roc.fpr, [0, 0, 0.5, 0.5, 1])
    assert roc.auc == pytest.approx(0.75)
    assert (roc.n_positive, roc.n_negative) == (2, 2)


@pytest.mark.parametrize(
    "labels, scores, auc",
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0),
        ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], 0.5),
        ([1, 0], [0.5, 0.5], 0.5),
        ([1, 1, 0], [0.7, 0.5, 0.5], 0.75),
    ],
)
def test_auc_hand_values_with_ties(labels, scores, auc) -> None:
    assert roc_curve(labels, scores).auc == pytest.approx(auc)


def test_auc_equals_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        y = rng.uniform(size=60) < 0.4
        s = np.round(rng.normal(size=60) + y, 1)  # rounding makes ties
        pos, neg = s[y], s[~y]
        pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        assert roc_curve(y, s).auc == pytest.approx(pairs)


def test_one_class_gives_an_undefined_auc() -> None:
    roc = roc_curve([True, True], [0.3, 0.6])
    assert np.isnan(roc.auc) and not roc.defined
    assert roc.to_dict() == {"auc": None, "n_positive": 2, "n_negative": 0}
    assert np.isnan(roc_curve([], []).auc)


def test_diameter_baseline_predicts_malignant_above_each_diameter() -> None:
    perfect = diameter_baseline_roc([4.0, 8.0, 12.0, 20.0], [False, False, True, True])
    assert perfect.auc == 1.0
    assert_allclose(perfect.thresholds[1:], [20, 12, 8, 4])
    mixed = diameter_baseline_roc([4.0, 8.0, 12.0, 20.0], [False, True, False, True])
    assert mixed.auc == pytest.approx(0.75)  # 8 mm beats 4 but not 12; 20 beats both


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        roc_curve([1, 0], [0.5])
    with pytest.raises(ValueError, match="finite"):
        roc_curve([1, 0], [np.nan, 0.5])


def test_to_dict_with_curve() -> None:
    out = roc_curve([1, 0], [0.8, 0.2]).to_dict(include_curve=True)
    assert out["auc"] == 1.0 and out["thresholds"] == [None, 0.8, 0.2]
    assert out["tpr"] == [0.0, 1.0, 1.0] and out["fpr"] == [0.0, 0.0, 1.0]
