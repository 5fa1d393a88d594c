"""Per-epoch training and validation metrics (SPEC §3), never NaN.

Classification metrics come from the per-sample labels, positive-class
probabilities and losses of an epoch; segmentation metrics from pixel counts
summed over batches. Every ratio is guarded: an empty denominator gives 0.
Metric dictionaries are flat, JSON-ready and use the names documented in
``docs/training-protocol.md``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Order of the per-batch segmentation sums (see :func:`segmentation_batch_sums`).
SEGMENTATION_SUM_FIELDS = ("loss_sum", "samples", "tp", "fn", "fp", "dice_sum")


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


def f_beta(precision: float, recall: float, beta: float) -> float:
    """The F-beta score of a precision and a recall (0 when both are 0)."""
    b2 = beta * beta
    return ratio((1 + b2) * precision * recall, b2 * precision + recall)


def _finite(value: float) -> float:
    """A float that JSON and the best-epoch logic can use (non-finite → 0.0)."""
    value = float(value)
    return value if math.isfinite(value) else 0.0


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    losses: np.ndarray,
    threshold: float = 0.5,
    with_auc: bool = False,
) -> dict[str, float]:
    """Loss, per-class correctness with counts, confusion counts and ratios.

    Args:
        labels: ``(N,)`` int true classes (1 = positive: nodule or malignant).
        probabilities: ``(N,)`` float predicted probability of class 1.
        losses: ``(N,)`` float per-sample losses.
        threshold: Probability at or above which a sample is called positive.
        with_auc: Also compute the ROC AUC (``auc``; 0 when a class is empty,
            with ``auc_defined`` = 0).

    Returns:
        Keys ``loss, samples, n_neg, n_pos, correct_all, correct_neg,
        correct_pos`` (percent), ``correct_neg_count, correct_pos_count, tp,
        fp, tn, fn, precision, recall, f1, f2`` and optionally ``auc,
        auc_defined``.
    """
    y = np.asarray(labels).astype(bool).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    predicted = p >= threshold
    tp = int(np.count_nonzero(predicted & y))
    fn = int(np.count_nonzero(~predicted & y))
    fp = int(np.count_nonzero(predicted & ~y))
    tn = int(np.count_nonzero(~predicted & ~y))
    n_pos, n_neg = tp + fn, tn + fp
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    out = {
        "loss": _finite(np.mean(losses)) if len(losses) else 0.0,
        "samples": float(y.size),
        "n_neg": float(n_neg),
        "n_pos": float(n_pos),
        "correct_all": 100.0 * ratio(tp + tn, y.size),
        "correct_neg": 100.0 * ratio(tn, n_neg),
        "correct_pos": 100.0 * ratio(tp, n_pos),
        "correct_neg_count": float(tn),
        "correct_pos_count": float(tp),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
        "precision": precision,
        "recall": recall,
        "f1": f_beta(precision, recall, 1.0),
        "f2": f_beta(precision, recall, 2.0),
    }
    if with_auc:
        defined = n_pos > 0 and n_neg > 0 and np.isfinite(p).all()
        if defined:
            from engine.metrics.roc import roc_curve

            out["auc"] = _finite(roc_curve(y, p).auc)
        else:
            out["auc"] = 0.0
        out["auc_defined"] = float(defined)
    return out


#: How the soft Dice sums run: per sample (the book) or over the whole batch.
DICE_MODES = ("sample", "batch")


def soft_dice_loss(
    prediction: torch.Tensor, label: torch.Tensor, epsilon: float = 1.0, over: str = "sample"
) -> torch.Tensor:
    """Soft Dice loss ``1 - (2Σpl + ε) / (Σp + Σl + ε)``.

    Args:
        prediction: ``(N, 1, H, W)`` probabilities.
        label: ``(N, 1, H, W)`` float (0/1) labels.
        epsilon: Smoothing term (1).
        over: ``"sample"``: sums per sample (the book); ``"batch"``: one sum over
            the whole batch, so false positives in a sample without label
            (where the per-sample loss saturates near 1 and hardly has a
            gradient) weigh like any others.

    Returns:
        ``(N,)`` losses (with ``"batch"``, the batch's loss repeated N times).
    """
    if over not in DICE_MODES:
        raise ValueError(f"dice sums run over {' or '.join(DICE_MODES)}, not {over!r}")
    dims = tuple(range(1, prediction.dim())) if over == "sample" else tuple(range(prediction.dim()))
    overlap = (prediction * label).sum(dim=dims)
    loss = 1.0 - (2.0 * overlap + epsilon) / (prediction.sum(dim=dims) + label.sum(dim=dims) + epsilon)
    return loss if over == "sample" else loss.expand(prediction.shape[0])


def segmentation_loss(
    prediction: torch.Tensor,
    label: torch.Tensor,
    fn_weight: float = 8.0,
    over: str = "sample",
    bce_weight: float = 0.0,
) -> torch.Tensor:
    """The book's segmentation loss ``dice(p, l) + fn_weight · dice(p·l, l)``, optionally ``+ bce_weight · BCE``.

    The second term only sees the labelled pixels, so it penalises false
    negatives ``fn_weight`` times as hard as the overall Dice term. Dice
    gradients on a false-positive pixel shrink with the square of the
    predicted area, so a model that flags too much unlearns it slowly; the
    optional pixel-wise binary cross-entropy gives every such pixel its own
    gradient.

    Args:
        prediction: ``(N, 1, H, W)`` probabilities, float32.
        label: ``(N, 1, H, W)`` bool or 0/1 labels.
        fn_weight: Weight of the false-negative term (8).
        over: ``"sample"`` (the book) or ``"batch"`` (see :func:`soft_dice_loss`).
        bce_weight: Weight of the mean pixel-wise binary cross-entropy (0: the book).

    Returns:
        ``(N,)`` losses; average them for the step.
    """
    label = label.to(prediction.dtype)
    loss = soft_dice_loss(prediction, label, over=over) + fn_weight * soft_dice_loss(prediction * label, label, over=over)
    if bce_weight > 0:
        p = prediction.clamp(1e-6, 1.0 - 1e-6)
        bce = -(label * torch.log(p) + (1.0 - label) * torch.log1p(-p))
        loss = loss + bce_weight * bce.mean(dim=tuple(range(1, prediction.dim())))
    return loss


def segmentation_batch_sums(
    prediction: torch.Tensor, label: torch.Tensor, losses: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Pixel counts of one batch, to be summed over an epoch (and across ranks).

    Args:
        prediction: ``(N, 1, H, W)`` probabilities.
        label: ``(N, 1, H, W)`` bool labels.
        losses: ``(N,)`` per-sample losses.
        threshold: Probability at or above which a pixel is called nodule.

    Returns:
        ``(6,)`` float64 tensor in :data:`SEGMENTATION_SUM_FIELDS` order, on the
        batch's device (no host synchronisation).
    """
    predicted = prediction >= threshold
    truth = label.bool()
    dims = tuple(range(1, predicted.dim()))
    tp_each = (predicted & truth).sum(dim=dims).double()
    fn_each = (~predicted & truth).sum(dim=dims).double()
    fp_each = (predicted & ~truth).sum(dim=dims).double()
    dice_each = torch.where(
        tp_each + fn_each + fp_each > 0, 2 * tp_each / (2 * tp_each + fn_each + fp_each).clamp_min(1), 1.0
    )
    return torch.stack(
        [
            losses.double().sum(),
            torch.tensor(float(losses.shape[0]), dtype=torch.float64, device=losses.device),
            tp_each.sum(),
            fn_each.sum(),
            fp_each.sum(),
            dice_each.sum(),
        ]
    )


def segmentation_metrics(sums: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Epoch metrics from summed :func:`segmentation_batch_sums`.

    Returns:
        Keys ``loss, samples, tp, fn, fp, labelled_pixels``, ``tp_pct, fn_pct,
        fp_pct`` (percent of labelled pixels; ``fp_pct`` may exceed 100),
        ``precision, recall, f1, f2, dice`` (pixel-level over the epoch) and
        ``dice_mean`` (mean of the per-sample Dice; a sample with neither label
        nor prediction scores 1).
    """
    values = dict(zip(SEGMENTATION_SUM_FIELDS, (float(v) for v in torch.as_tensor(sums).tolist())))
    tp, fn, fp = values["tp"], values["fn"], values["fp"]
    labelled = tp + fn
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "loss": _finite(ratio(values["loss_sum"], values["samples"])),
        "samples": values["samples"],
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "labelled_pixels": labelled,
        "tp_pct": 100.0 * ratio(tp, labelled),
        "fn_pct": 100.0 * ratio(fn, labelled),
        "fp_pct": 100.0 * ratio(fp, labelled),
        "precision": precision,
        "recall": recall,
        "f1": f_beta(precision, recall, 1.0),
        "f2": f_beta(precision, recall, 2.0),
        "dice": ratio(2 * tp, 2 * tp + fn + fp),
        "dice_mean": ratio(values["dice_sum"], values["samples"]),
    }
