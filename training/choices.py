"""Names the trainers accept, in one torch-free place (the CLI and the app's Training panel read them here).

Nothing here imports torch, so the training CLI's parser and the panel's form
load without it. ``tests/training/test_choices.py`` checks these against the
modules that use them (``training.augmentation.AugmentConfig``, ``training.config``).
"""

from __future__ import annotations

from engine.choices import MODEL_ROLES

#: The model kinds there is a trainer for: one per model of the detector.
TRAIN_KINDS = MODEL_ROLES
#: Augmentation switches (``--augment-NAME``; the fields of ``AugmentConfig``), in the panel's order.
AUGMENTATIONS = ("flip", "offset", "scale", "rotate", "noise")
#: Optimizers a run can use.
OPTIMIZERS = ("sgd", "adam")
