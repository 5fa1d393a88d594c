"""The trainers' torch-free names agree with the modules that use them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from app.training.request import KIND_LABELS
from training.augmentation import AugmentConfig
from training.choices import AUGMENTATIONS, OPTIMIZERS, TRAIN_KINDS
from training.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_augmentations_are_the_fields_of_augment_config() -> None:
    assert set(AUGMENTATIONS) == {f.name for f in fields(AugmentConfig)}


def test_the_cli_and_the_panel_use_the_same_kinds_and_options() -> None:
    assert tuple(KIND_LABELS) == TRAIN_KINDS
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(TRAIN_KINDS) <= set(commands)
    train = commands[TRAIN_KINDS[0]]
    options = {a.dest: a for a in train._actions}
    assert tuple(options["optimizer"].choices) == OPTIMIZERS
    for name in AUGMENTATIONS:
        assert f"augment_{name}" in options


def test_choices_import_without_torch() -> None:
    code = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "import training.choices, training.cli, engine.run_layout, engine.files\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_kind_defaults_are_train_config_settings() -> None:
    from training.choices import BEST_METRIC, kind_defaults
    from training.config import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    for kind in TRAIN_KINDS:
        values = kind_defaults(kind)
        assert set(values) <= names
        assert values["best_metric"] == BEST_METRIC[kind] and values["optimizer"] in OPTIMIZERS
    assert kind_defaults("classifier", fine_tuning=True)["validation_cadence"] == 1
