"""Epoch metrics on hand-computed cases; empty classes give 0, never NaN."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from training.metrics import (
    classification_metrics,
    f_beta,
    ratio,
    segmentation_batch_sums,
    segmentation_loss,
    segmentation_metrics,
    soft_dice_loss,
)


def test_classification_counts_and_ratios_by_hand() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.5, 0.0])  # 0.5 counts as positive
    losses = np.arange(8, dtype=np.float32)
    m = classification_metrics(labels, probs, losses, with_auc=True)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 2, 3)
    assert m["n_pos"] == 3 and m["n_neg"] == 5 and m["samples"] == 8
    assert m["correct_all"] == pytest.approx(100 * 5 / 8)
    assert m["correct_pos"] == pytest.approx(100 * 2 / 3) and m["correct_pos_count"] == 2
    assert m["correct_neg"] == pytest.approx(100 * 3 / 5) and m["correct_neg_count"] == 3
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["f2"] == pytest.approx(5 * 0.5 * (2 / 3) / (4 * 0.5 + 2 / 3))
    assert m["loss"] == pytest.approx(3.5)
    # AUC by counting pairs: positives 0.9, 0.6, 0.2 vs negatives 0.7, 0.1, 0.3, 0.5, 0.0
    pairs = sum((p > n) + 0.5 * (p == n) for p in (0.9, 0.6, 0.2) for n in (0.7, 0.1, 0.3, 0.5, 0.0))
    assert m["auc"] == pytest.approx(pairs / 15) and m["auc_defined"] == 1.0


@pytest.mark.parametrize(
    "labels,probs",
    [
        (np.zeros(0, int), np.zeros(0)),  # empty epoch
        (np.zeros(4, int), np.full(4, 0.1)),  # no positives, no predictions
        (np.ones(3, int), np.full(3, 0.9)),  # no negatives
    ],
)
def test_degenerate_cases_are_zero_not_nan(labels: np.ndarray, probs: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning spam either
        m = classification_metrics(labels, probs, np.zeros(len(labels)), with_auc=True)
    assert all(math.isfinite(v) for v in m.values())
    assert m["auc"] == 0.0 and m["auc_defined"] == 0.0


def test_ratio_and_f_beta_guard_zero() -> None:
    assert ratio(3, 0) == 0.0 and ratio(1, 4) == 0.25
    assert f_beta(0.0, 0.0, 1.0) == 0.0
    assert f_beta(1.0, 1.0, 2.0) == pytest.approx(1.0)


def test_soft_dice_by_hand() -> None:
    p = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    l = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    expected = 1 - (2 * 1.5 + 1) / (1.5 + 2 + 1)
    assert soft_dice_loss(p, l).item() == pytest.approx(expected)
    fn_term = 1 - (2 * 1.5 + 1) / (1.5 + 2 + 1)  # p·l equals p here
    assert segmentation_loss(p, l.bool(), fn_weight=8).item() == pytest.approx(expected + 8 * fn_term)


def test_perfect_prediction_has_zero_loss_and_full_scores() -> None:
    label = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    label[:, :, 2:5, 2:5] = True
    pred = label.float()
    losses = segmentation_loss(pred, label)
    assert torch.allclose(losses, torch.zeros(2), atol=1e-6)
    m = segmentation_metrics(segmentation_batch_sums(pred, label, losses))
    assert m["recall"] == 1.0 and m["precision"] == 1.0 and m["dice"] == 1.0 and m["dice_mean"] == 1.0
    assert m["tp_pct"] == 100.0 and m["fn_pct"] == 0.0 and m["fp_pct"] == 0.0
    assert m["labelled_pixels"] == 18


def test_segmentation_pixel_percentages_by_hand() -> None:
    label = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    label[0, 0, 0, :] = True  # 4 labelled pixels
    pred = torch.zeros(1, 1, 4, 4)
    pred[0, 0, 0, :3] = 0.8  # 3 TP, 1 FN
    pred[0, 0, 3, :] = 0.9  # 4 FP
    sums = segmentation_batch_sums(pred, label, torch.tensor([0.5]))
    sums = sums + segmentation_batch_sums(pred, label, torch.tensor([1.5]))  # two batches summed
    m = segmentation_metrics(sums)
    assert (m["tp"], m["fn"], m["fp"]) == (6, 2, 8)
    assert m["tp_pct"] == 75.0 and m["fn_pct"] == 25.0 and m["fp_pct"] == 100.0
    assert m["precision"] == pytest.approx(6 / 14) and m["recall"] == pytest.approx(0.75)
    assert m["dice"] == pytest.approx(12 / (12 + 2 + 8))
    assert m["loss"] == pytest.approx(1.0) and m["samples"] == 2


def test_empty_segmentation_epoch_is_all_zero() -> None:
    m = segmentation_metrics(torch.zeros(6, dtype=torch.float64))
    assert all(v == 0.0 for v in m.values())


def test_batch_dice_lets_an_empty_sample_count() -> None:
    label = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    label[0, 0, :2, :2] = True
    pred = torch.zeros(2, 1, 4, 4, requires_grad=True)
    with torch.no_grad():
        pred[0, 0, :2, :2] = 1.0
        pred[1] = 0.5  # false positives everywhere in the sample without label
    per_sample = segmentation_loss(pred, label, fn_weight=0)
    batch = segmentation_loss(pred, label, fn_weight=0, over="batch")
    assert batch.shape == (2,) and torch.allclose(batch, batch[0].expand(2))
    assert batch[0].item() == pytest.approx(1 - (2 * 4 + 1) / (4 + 8 + 4 + 1))
    (grad_sample,) = torch.autograd.grad(per_sample.mean(), pred)
    (grad_batch,) = torch.autograd.grad(batch.mean(), pred)
    # per sample, the empty sample's loss has saturated: its pixels hardly get a gradient
    assert grad_batch[1].abs().mean() > 5 * grad_sample[1].abs().mean()
    with pytest.raises(ValueError):
        segmentation_loss(pred, label, over="pixel")


def test_the_optional_cross_entropy_term() -> None:
    label = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    label[0, 0, 0, 0] = True
    pred = torch.tensor([[[[0.9, 0.2], [0.1, 0.6]]]])
    bce = -(math.log(0.9) + math.log(0.8) + math.log(0.9) + math.log(0.4)) / 4
    plain = segmentation_loss(pred, label)
    assert segmentation_loss(pred, label, bce_weight=0.5).item() == pytest.approx(plain.item() + 0.5 * bce, rel=1e-5)
    assert torch.isfinite(segmentation_loss(torch.ones(1, 1, 2, 2), label, bce_weight=1.0)).all()


def test_segmentation_sigmoid_runs_in_float32_under_autocast() -> None:
    from engine.models.segmentation import SegmentationModel
    from training.segmentation_task import _float32_input

    model = SegmentationModel()
    model.final.register_forward_pre_hook(_float32_input)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 7, 16, 16) * 300)
    assert out.dtype == torch.float32
