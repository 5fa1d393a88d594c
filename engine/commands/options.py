"""Command-line options shared by the commands that run a detector (analyze, evaluate, bench, mine-negatives).

The grouping options are derived from the fields of
:class:`~engine.detection.settings.GroupingSettings` (name, type, default,
``help`` and ``choices`` in the field's metadata), so a new grouping setting
becomes an option of every command without touching them. Validation is the
settings class's own: an invalid value is refused while parsing, with its
message. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Callable

from engine.choices import DEVICE_CHOICES, MODEL_OPTIONS, MODEL_ROLES, PRECISION_CHOICES
from engine.detection.settings import BACKENDS, GroupingSettings

#: ``--seg`` etc.: the argparse destination (``seg``) of each role's checkpoint option.
MODEL_DESTINATIONS = {role: option.removeprefix("--") for role, option in MODEL_OPTIONS.items()}
_CUDA_INDEX = re.compile(r"cuda:\d+")


def device_name(text: str) -> str:
    """An argparse type: one of :data:`~engine.choices.DEVICE_CHOICES` or ``cuda:N``.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    name = text.strip().lower()
    if name in DEVICE_CHOICES or _CUDA_INDEX.fullmatch(name):
        return name
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose one of {', '.join(DEVICE_CHOICES)} or cuda:N")


def add_model_arguments(
    parser: argparse.ArgumentParser, default: str = "the demo weights", precision: bool = True, backend: bool = True
) -> None:
    """``--seg``/``--cls``/``--mal`` (a checkpoint per role), ``--device``, ``--precision`` and ``--backend``.

    Args:
        parser: The command's parser.
        default: What a role without a checkpoint uses, for the help text.
        precision: Also add ``--precision``.
        backend: Also add ``--backend`` (:func:`add_backend_argument`).
    """
    names = {"segmentation": "segmentation", "classifier": "nodule classifier", "malignancy": "malignancy classifier"}
    for role in MODEL_ROLES:
        parser.add_argument(MODEL_OPTIONS[role], default=None,
                            help=f"{names[role]} checkpoint (.pt, or the book's .state); default: {default}")
    parser.add_argument("--device", default="auto", type=device_name,
                        help=f"where the models run: {', '.join(DEVICE_CHOICES)} or cuda:N (default auto)")
    if precision:
        parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                            help="float type of the models (auto: float16 on GPU, float32 on CPU)")
    if backend:
        add_backend_argument(parser)


def add_backend_argument(parser: argparse.ArgumentParser, choices: tuple[str, ...] = BACKENDS) -> None:
    """``--backend``: the runtime of the models (:attr:`~engine.detection.settings.DetectorConfig.backend`).

    Args:
        parser: The command's parser.
        choices: The values offered (``bench`` adds ``both``).
    """
    parser.add_argument(
        "--backend", default="torch", choices=choices,
        help="runtime of the models: torch (default), onnx (ONNX Runtime; exported and checked on first use, "
        "cached in the user data folder) or auto (per stage the faster one measured on this device)"
        + ("; both: time torch and onnx side by side" if "both" in choices else ""),
    )


def model_paths_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    """``{role: checkpoint given or None}`` from :func:`add_model_arguments`' options."""
    return {role: getattr(args, dest) for role, dest in MODEL_DESTINATIONS.items()}


def add_grouping_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`GroupingSettings` field: ``seg_threshold`` → ``--seg-threshold``, etc."""
    for setting in dataclasses.fields(GroupingSettings):
        extra: dict[str, Any] = {}
        if "choices" in setting.metadata:
            extra["choices"] = setting.metadata["choices"]
        parser.add_argument(
            "--" + setting.name.replace("_", "-"),
            dest=setting.name,
            default=setting.default,
            type=_setting_type(setting),
            help=setting.metadata["help"],
            **extra,
        )


def grouping_from_args(args: argparse.Namespace) -> GroupingSettings:
    """The :class:`GroupingSettings` of :func:`add_grouping_arguments`' options."""
    return GroupingSettings(**{setting.name: getattr(args, setting.name) for setting in dataclasses.fields(GroupingSettings)})


def _setting_type(setting: dataclasses.Field) -> Callable[[str], Any]:
    """An argparse type for one field: converts like its default, then lets the settings class check the value."""
    convert = type(setting.default)

    def parse(text: str) -> Any:
        try:
            value = convert(text)
            GroupingSettings(**{setting.name: value})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its "invalid ... value" message
    return parse
