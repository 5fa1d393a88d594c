"""Checking a checkpoint's ``model_args`` before a model is built from them.

A checkpoint of a few kilobytes names the constructor arguments of its model;
hostile or corrupted ones (``wf = 30``, ``conv_channels = 10**6``) would make
the loader allocate gigabytes before any tensor is compared. Every kind's
arguments are checked here against its architecture: the allowed keys, their
types, sane ranges, and an estimate of the parameter count. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import CheckpointError

#: The most parameters a model built from a checkpoint may have (the shipped ones have < 1 million).
MAX_PARAMETERS = 50_000_000
#: The classifier's input crop after its four 2× poolings, (index, row, col) = (32, 48, 48) / 16.
_POOLED_VOXELS = 2 * 3 * 3

#: kind → argument → (type, lowest, highest); a ``str`` argument gives its allowed values instead of a range.
_CLASSIFIER = {"in_channels": (int, 1, 16), "conv_channels": (int, 1, 512)}
_SEGMENTATION = {
    "in_channels": (int, 1, 64),
    "n_classes": (int, 1, 16),
    "depth": (int, 1, 8),
    "wf": (int, 0, 12),
    "padding": (bool, None, None),
    "batch_norm": (bool, None, None),
    "up_mode": (str, ("upconv", "upsample"), None),
}
ARGUMENT_RULES: dict[str, dict[str, tuple[type, Any, Any]]] = {
    "segmentation": _SEGMENTATION,
    "classifier": {**_CLASSIFIER, "shape_head": (bool, None, None)},
    "malignancy": {**_CLASSIFIER, "size_head": (bool, None, None)},
}


def check_model_args(kind: str, model_args: Mapping[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Refuse constructor arguments that do not describe a sane model of ``kind``.

    Args:
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        model_args: The arguments read from a checkpoint.
        path: The checkpoint, named in the message.

    Returns:
        The arguments as a plain dict.

    Raises:
        CheckpointError: an unknown key, a value of the wrong type or outside its
            range, or more than :data:`MAX_PARAMETERS` parameters.
    """
    rules = ARGUMENT_RULES.get(kind)
    if rules is None:
        raise CheckpointError(f"unknown model kind {kind!r}; expected one of {', '.join(ARGUMENT_RULES)}", path)
    if not isinstance(model_args, Mapping):
        raise CheckpointError(f"model_args is a {type(model_args).__name__}, not a dict", path)
    values = dict(model_args)
    unknown = sorted(str(key) for key in values if key not in rules)
    if unknown:
        raise CheckpointError(
            f"model arguments {values} do not fit a {kind} model: unknown argument(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(rules)}",
            path,
        )
    for name, (kind_type, low, high) in rules.items():
        if name in values:
            _check_value(kind, name, values[name], kind_type, low, high, path)
    count = estimated_parameters(kind, values)
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"model_args {values} describe a {kind} model of about {count:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} allowed; refused before building it",
            path,
        )
    return values


def _check_value(kind: str, name: str, value: Any, kind_type: type, low: Any, high: Any, path: Path | None) -> None:
    if kind_type is str:
        if not isinstance(value, str) or value not in low:
            raise CheckpointError(f"model_args {name} = {value!r} of a {kind} model is not one of {', '.join(low)}", path)
        return
    if type(value) is not kind_type:  # bool is an int subclass: compare the exact type
        raise CheckpointError(
            f"model_args {name} = {value!r} of a {kind} model is a {type(value).__name__}, not a {kind_type.__name__}", path
        )
    if low is not None and not low <= value <= high:
        raise CheckpointError(f"model_args {name} = {value} of a {kind} model is outside {low}..{high}", path)


def estimated_parameters(kind: str, model_args: Mapping[str, Any]) -> int:
    """The parameter count of the model the (range-checked) arguments build, from the architecture's formula.

    Convolutions and linear layers with their biases; batch-norm scales and shifts.
    """
    if kind == "segmentation":
        return _unet_parameters(
            int(model_args.get("in_channels", 7)),
            int(model_args.get("n_classes", 1)),
            int(model_args.get("depth", 3)),
            int(model_args.get("wf", 4)),
        )
    c_in = int(model_args.get("in_channels", 1))
    c = int(model_args.get("conv_channels", 8))
    total = 2 * c_in  # the input batch norm
    channels = c_in
    for width in (c, 2 * c, 4 * c, 8 * c):
        total += 27 * channels * width + width + 27 * width * width + width
        channels = width
    from engine.lesion_shape import INPUT_NAMES

    heads = (3 if model_args.get("size_head") else 0) + (len(INPUT_NAMES) + 1 if model_args.get("shape_head") else 0)
    return total + channels * _POOLED_VOXELS * 2 + 2 + heads


def _unet_parameters(in_channels: int, n_classes: int, depth: int, wf: int) -> int:
    def block(c_in: int, c_out: int) -> int:  # two 3×3 convolutions, each with a batch norm
        return 9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out + 4 * c_out

    total = 2 * in_channels  # the input batch norm
    channels = in_channels
    for level in range(depth):
        total += block(channels, 2 ** (wf + level))
        channels = 2 ** (wf + level)
    for level in reversed(range(depth - 1)):
        width = 2 ** (wf + level)
        total += 4 * channels * width + width + block(channels, width)  # up-convolution, then the block
        channels = width
    return total + channels * n_classes + n_classes
