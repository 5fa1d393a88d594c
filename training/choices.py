"""Names and per-kind defaults the trainers accept, in one torch-free place (the CLI and the Training panel read them).

Nothing here imports torch, so the training CLI's parser and the panel's form
load without it. ``tests/training/test_choices.py`` checks these against the
modules that use them (``training.augmentation.AugmentConfig``, ``training.config``).
"""

from __future__ import annotations

from typing import Any

from engine.choices import MODEL_ROLES

#: The model kinds there is a trainer for: one per model of the detector.
TRAIN_KINDS = MODEL_ROLES
#: Augmentation switches (``--augment-NAME``; the fields of ``AugmentConfig``), in the panel's order.
AUGMENTATIONS = ("flip", "offset", "scale", "rotate", "noise")
#: Optimizers a run can use.
OPTIMIZERS = ("sgd", "adam")
#: The validation metric each kind selects its best epoch by.
BEST_METRIC = {"segmentation": "recall", "classifier": "f1", "malignancy": "auc"}


def kind_defaults(kind: str, fine_tuning: bool = False) -> dict[str, Any]:
    """SPEC §3's defaults for one model kind.

    Args:
        kind: The model kind.
        fine_tuning: Whether the run starts from a checkpoint (validation then
            runs every epoch).
    """
    if kind == "segmentation":
        values: dict[str, Any] = {
            "batch_size": 16,
            "val_batch_size": 8,
            "ratio": 0,
            "epoch_size": 300_000,
            "optimizer": "adam",
            "lr": 0.001,
        }
    elif kind == "malignancy":
        values = {"batch_size": 32, "ratio": 1, "epoch_size": 50_000, "optimizer": "sgd", "lr": 0.001}
    else:
        values = {"batch_size": 32, "ratio": 1, "epoch_size": 200_000, "optimizer": "sgd", "lr": 0.001}
    values["best_metric"] = BEST_METRIC[kind]
    values["validation_cadence"] = 1 if (fine_tuning or kind == "malignancy") else 5
    return values
