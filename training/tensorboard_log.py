"""TensorBoard output of a training run: scalars, probability histograms, ROC figures, overlays.

Two event-file folders, ``tensorboard/train`` and ``tensorboard/val``, so the
two phases share tags and plot together. The x axis is the number of
training samples seen (as in the book). Only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.run_layout import TENSORBOARD_PHASES, RunLayout

#: Metric name → TensorBoard tag group.
_GROUPS = {
    "loss": "loss/all",
    "correct_all": "correct/all",
    "correct_neg": "correct/neg",
    "correct_pos": "correct/pos",
    "precision": "pr/precision",
    "recall": "pr/recall",
    "f1": "pr/f1_score",
    "f2": "pr/f2_score",
    "auc": "roc/auc",
    "tp_pct": "percent_all/tp",
    "fn_pct": "percent_all/fn",
    "fp_pct": "percent_all/fp",
    "dice": "dice/pixels",
    "dice_mean": "dice/mean_per_sample",
}


def open_writers(run_dir: Path) -> dict[str, Any]:
    """One ``SummaryWriter`` per phase under ``run_dir/tensorboard``."""
    from torch.utils.tensorboard import SummaryWriter

    folder = RunLayout(Path(run_dir)).tensorboard
    return {phase: SummaryWriter(log_dir=str(folder / phase)) for phase in TENSORBOARD_PHASES}


def write_scalars(writer: Any, metrics: dict[str, float], step: int) -> None:
    """Every metric as a scalar; counts go under ``count/``."""
    for name, value in metrics.items():
        writer.add_scalar(_GROUPS.get(name, f"count/{name}"), float(value), step)


def classification_figures(writer: Any, step: int, labels: np.ndarray, probs: np.ndarray, with_roc: bool) -> None:
    """Histograms of the predicted positive probability per true class, and the ROC curve.

    Args:
        writer: The phase's ``SummaryWriter``.
        step: Training samples seen.
        labels: ``(N,)`` true classes.
        probs: ``(N,)`` predicted probability of class 1.
        with_roc: Also add the ROC curve as an image.
    """
    labels = np.asarray(labels).astype(bool)
    bins = np.linspace(0.0, 1.0, 51)
    for name, members in (("neg", ~labels), ("pos", labels)):
        if members.any():
            writer.add_histogram(f"prob/{name}", np.asarray(probs)[members], step, bins=bins)
    if with_roc and labels.any() and (~labels).any():
        writer.add_image("roc", roc_image(labels, probs), step, dataformats="HWC")


def roc_image(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The ROC curve drawn with matplotlib (no pyplot), as ``(H, W, 3)`` uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from engine.metrics.roc import roc_curve

    curve = roc_curve(labels, probs)
    figure = Figure(figsize=(4, 4), dpi=80)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(curve.fpr, curve.tpr, color="tab:blue", label=f"AUC {curve.auc:.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"ROC ({curve.n_positive} pos, {curve.n_negative} neg)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def overlay_image(ct: np.ndarray, label: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The book's review image: grey CT, green true positives, red false positives and negatives.

    Args:
        ct: ``(rows, cols)`` HU (clipped to [-1000, 1000] for display).
        label: ``(rows, cols)`` bool truth.
        prediction: ``(rows, cols)`` probabilities.
        threshold: Probability called nodule.

    Returns:
        ``(rows, cols, 3)`` float32 in [0, 1].
    """
    grey = (np.clip(ct, -1000, 1000) + 1000.0) / 2000.0
    image = np.repeat(grey[..., None], 3, axis=2).astype(np.float32) * 0.5
    predicted = prediction >= threshold
    truth = label.astype(bool)
    wrong = (predicted & ~truth) | (~predicted & truth)
    image[..., 0] += wrong
    image[..., 1] += predicted & truth
    return np.clip(image, 0.0, 1.0)


def segmentation_overlays(writer: Any, step: int, images: list[tuple[np.ndarray, np.ndarray, np.ndarray]], threshold: float) -> None:
    """Add one overlay image per kept validation slice (``overlay/<k>``)."""
    for k, (ct, label, prediction) in enumerate(images):
        writer.add_image(f"overlay/{k}", overlay_image(ct, label, prediction, threshold), step, dataformats="HWC")
