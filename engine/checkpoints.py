"""Model checkpoints: the project's own format, and import of the book's ``.state`` files.

Our format is a ``torch.save`` dict::

    {"format": "lungcad-checkpoint", "format_version": 1, "kind": "classifier",
     "model_args": {...}, "model_state": {...}, "sha256": "...",
     "metadata": {...}, "optimizer_state": {...} | None, "optimizer_name": str | None}

``kind`` is one of :data:`KINDS`; the model is rebuilt from ``model_args``.
Saving is atomic (:mod:`engine.files`).
Loading always uses ``weights_only=True``: a file that would need pickled code
is refused and its code never runs. The book's files (``model_name`` =
``'LunaModel'`` or ``'UNetWrapper'``) are recognised and their weights loaded
into the same modules (our names match the book's; a ``module.`` prefix from
DataParallel is removed).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import pickletools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from engine.errors import CheckpointError, CheckpointKindError, CheckpointShapeError, UnsafeCheckpointError
from engine.files import atomic_open
from engine.models.classifier import NoduleClassifier
from engine.models.segmentation import SegmentationModel

#: The byte values that are pickle operations (a refused one means the file holds a real pickle, not garbage).
_PICKLE_OPCODES = frozenset(ord(op.code) for op in pickletools.opcodes)
FORMAT = "lungcad-checkpoint"
FORMAT_VERSION = 1
#: Model kinds and the class each is rebuilt as.
KINDS: dict[str, type[nn.Module]] = {
    "segmentation": SegmentationModel,
    "classifier": NoduleClassifier,
    "malignancy": NoduleClassifier,
}
#: The book's ``model_name`` → the kinds its weights may serve as.
BOOK_MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "LunaModel": ("classifier", "malignancy"),
    "UNetWrapper": ("segmentation",),
}


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode, on ``map_location``) and what came with it.

    Args:
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        model: The model with the weights loaded, in eval mode.
        model_args: Constructor arguments the model was built with.
        metadata: Training config, epoch, metrics, samples seen, ... (plain values).
        sha256: Hex digest of the weights (see :func:`weights_sha256`).
        path: The file read.
        source_format: ``"lungcad"`` or ``"book"``.
        optimizer_state: The optimizer's state dict, if saved.
        optimizer_name: The optimizer's class name, if saved.
    """

    kind: str
    model: nn.Module
    model_args: Mapping[str, Any]
    metadata: Mapping[str, Any]
    sha256: str
    path: Path
    source_format: str
    optimizer_state: Mapping[str, Any] | None = field(default=None, repr=False)
    optimizer_name: str | None = None

    @property
    def model_id(self) -> str:
        """Short identifier, ``kind:`` plus the first 10 hex digits of the weights' sha256."""
        return model_id(self.kind, self.sha256)


def model_id(kind: str, sha256: str) -> str:
    """``"<kind>:<first 10 hex digits of sha256>"``, the id results carry."""
    return f"{kind}:{sha256[:10]}"


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Digest of a state dict: names, dtypes, shapes and bytes, in sorted name order.

    Independent of the device and of how the file was written, so an imported
    book checkpoint and the same weights saved in our format get the same hash.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_weights_id(model: nn.Module, kind: str) -> str:
    """The :func:`model_id` of a model in memory (e.g. one built without a checkpoint)."""
    return model_id(kind, weights_sha256(model.state_dict()))


def build_model(kind: str, model_args: Mapping[str, Any]) -> nn.Module:
    """Construct an untrained model of ``kind`` from its constructor arguments.

    Raises:
        CheckpointKindError: ``kind`` is unknown.
        CheckpointError: the arguments do not fit the model's constructor.
    """
    from engine.checkpoint_args import check_model_args

    if kind not in KINDS:
        raise CheckpointKindError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    model_args = check_model_args(kind, model_args)  # before any allocation: hostile sizes are refused
    try:
        return KINDS[kind](**dict(model_args))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model arguments {dict(model_args)} do not fit a {kind} model: {exc}") from None


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    kind: str,
    *,
    model_args: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    optimizer_state: Mapping[str, Any] | None = None,
    optimizer_name: str | None = None,
) -> str:
    """Write a checkpoint atomically.

    Args:
        path: Destination file (``.pt``); its folder is created if missing.
        model: The model whose ``state_dict`` is saved (any device; stored on the CPU).
        kind: One of :data:`KINDS`.
        model_args: Constructor arguments that rebuild ``model``.
        metadata: Plain values only (dict/list/tuple/str/int/float/bool/None,
            tensors): training config, epoch, metrics, samples seen, ...
        optimizer_state: ``optimizer.state_dict()`` to resume training, or None.
        optimizer_name: The optimizer's class name.

    Returns:
        The sha256 of the weights.

    Raises:
        CheckpointKindError: ``kind`` is unknown.
        CheckpointError: ``model_args`` do not rebuild a model with ``model``'s
            tensor shapes, or ``metadata`` holds something that cannot be loaded
            without pickled code.
    """
    path = Path(path)
    state = {name: tensor.detach().to("cpu").clone() for name, tensor in model.state_dict().items()}
    check_state_fits(build_model(kind, model_args), state, path)
    model_args = _check_plain(dict(model_args), "model_args", path)
    metadata = _check_plain(dict(metadata or {}), "metadata", path)
    if optimizer_state is not None:
        optimizer_state = _to_cpu(optimizer_state)
    sha = weights_sha256(state)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_args": dict(model_args),
        "model_state": state,
        "sha256": sha,
        "metadata": dict(metadata or {}),
        "optimizer_state": optimizer_state,
        "optimizer_name": optimizer_name,
    }
    try:
        with atomic_open(path, "wb") as stream:
            torch.save(payload, stream)
    except (OSError, RuntimeError) as exc:
        # torch's zip writer turns a failed write (a full disk) into a RuntimeError; the OSError is its context
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        raise CheckpointError(
            f"could not be written ({cause.strerror or cause}); the previous file, if any, is unchanged", path
        ) from None
    return sha


def load_checkpoint(
    path: str | Path,
    expected_kind: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load one of our checkpoints or a book ``.state`` file, safely and strictly.

    Args:
        path: The file.
        expected_kind: The kind the caller needs; ``None`` accepts any.
        map_location: Device the tensors (and the model) are put on.

    Returns:
        The checkpoint with its model rebuilt, weights loaded, in eval mode.

    Raises:
        CheckpointError: missing, empty, truncated or unrecognised file, or a
            sha256 mismatch (corrupted weights).
        UnsafeCheckpointError: the file needs pickled code to load (refused).
        CheckpointKindError: the file holds another kind of model.
        CheckpointShapeError: tensors missing, unexpected or of the wrong shape.
    """
    path = Path(path)
    if expected_kind is not None and expected_kind not in KINDS:
        raise CheckpointKindError(f"unknown model kind {expected_kind!r}; expected one of {', '.join(KINDS)}")
    payload = _read_payload(path, map_location)
    if payload.get("format") == FORMAT:
        kind, model_args, state = _our_parts(payload, path)
        source, metadata = "lungcad", dict(payload.get("metadata") or {})
    elif "model_state" in payload and "model_name" in payload:
        kind, model_args, state = _book_parts(payload, path, expected_kind)
        source = "book"
        metadata = {k: v for k, v in payload.items() if k not in ("model_state", "optimizer_state")}
    else:
        keys = ", ".join(sorted(map(str, payload))[:8])
        raise CheckpointError(f"not a model checkpoint: a dict with keys {keys}", path)
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointKindError(f"holds a {kind} model, but a {expected_kind} model is needed here", path)
    try:
        model = build_model(kind, model_args)
    except CheckpointKindError:
        raise
    except CheckpointError as exc:
        raise CheckpointError(exc.reason, path) from None
    check_state_fits(model, state, path)
    sha = weights_sha256(state)
    if source == "lungcad" and payload.get("sha256") != sha:
        raise CheckpointError("the weights do not match their stored sha256: the file is corrupted", path)
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    return Checkpoint(
        kind=kind,
        model=model,
        model_args=dict(model_args),
        metadata=metadata,
        sha256=sha,
        path=path,
        source_format=source,
        optimizer_state=payload.get("optimizer_state"),
        optimizer_name=payload.get("optimizer_name"),
    )


def check_state_fits(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path | None = None) -> None:
    """Raise :class:`CheckpointShapeError` unless ``state`` has exactly ``model``'s tensors and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{name} {tuple(state[name].shape)} (model needs {tuple(expected[name].shape)})"
        for name in expected
        if name in state and tuple(state[name].shape) != tuple(expected[name].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {', '.join(missing[:4])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {', '.join(unexpected[:4])}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:4])}")
    if problems:
        raise CheckpointShapeError(
            f"the weights do not fit a {type(model).__name__}: " + "; ".join(problems), path
        )


# --- reading -------------------------------------------------------------------
def _read_payload(path: Path, map_location: str | torch.device) -> dict:
    if not path.exists():
        raise CheckpointError("no such checkpoint file", path)
    if path.is_dir():
        raise CheckpointError("is a folder, not a checkpoint file", path)
    if path.stat().st_size == 0:
        raise CheckpointError("the checkpoint file is empty", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing or reading
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        what = _unsafe_part(str(exc))
        if what is not None:
            raise UnsafeCheckpointError(
                f"refused: loading it could run code (the file holds pickled code: {what}); "
                "only files holding plain tensors and values are accepted",
                path,
            ) from None
        raise CheckpointError("cannot be read as a torch checkpoint: truncated or not a checkpoint", path) from None
    except MemoryError:
        raise CheckpointError("cannot be read: it claims more memory than there is", path) from None
    except Exception as exc:  # noqa: BLE001 — torch's readers fail on garbage with any error type (IndexError, ...)
        raise CheckpointError(
            f"cannot be read as a torch checkpoint: truncated or not a checkpoint ({type(exc).__name__}: "
            f"{_first_line(str(exc)) or 'unexpected end of data'})",
            path,
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"holds a {type(payload).__name__}, not a checkpoint dict", path)
    return payload


def _our_parts(payload: dict, path: Path) -> tuple[str, dict, dict]:
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is not supported (this program reads {FORMAT_VERSION})", path)
    kind = payload.get("kind")
    if kind not in KINDS:
        raise CheckpointKindError(f"unknown model kind {kind!r} in the checkpoint", path)
    state = payload.get("model_state")
    if not isinstance(state, dict):
        raise CheckpointError("the checkpoint has no model_state dict", path)
    return kind, dict(payload.get("model_args") or {}), state


def _book_parts(payload: dict, path: Path, expected_kind: str | None) -> tuple[str, dict, dict]:
    name = payload.get("model_name")
    kinds = BOOK_MODEL_KINDS.get(name)
    if kinds is None:
        raise CheckpointKindError(
            f"book checkpoint of an unknown model {name!r}; known: {', '.join(BOOK_MODEL_KINDS)}", path
        )
    kind = expected_kind if expected_kind in kinds else kinds[0]
    state = {_strip_prefix(key): value for key, value in payload["model_state"].items()}
    if kind == "segmentation":
        model_args = _book_unet_args(state, path)
    else:
        model_args = _book_classifier_args(state, path)
    return kind, model_args, state


def _strip_prefix(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _tensor(state: Mapping[str, torch.Tensor], key: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise CheckpointShapeError(f"the book checkpoint lacks the tensor {key}", path)
    return state[key]


def _book_classifier_args(state: Mapping[str, torch.Tensor], path: Path) -> dict:
    conv = _tensor(state, "block1.conv1.weight", path)
    return {"in_channels": int(conv.shape[1]), "conv_channels": int(conv.shape[0])}


def _book_unet_args(state: Mapping[str, torch.Tensor], path: Path) -> dict:
    first = _tensor(state, "unet.down_path.0.block.0.weight", path)
    last = _tensor(state, "unet.last.weight", path)
    depth = len({key.split(".")[2] for key in state if key.startswith("unet.down_path.")})
    return {
        "in_channels": int(first.shape[1]),
        "n_classes": int(last.shape[0]),
        "depth": depth,
        "wf": int(round(math.log2(int(first.shape[0])))),
        "padding": True,
        "batch_norm": "unet.down_path.0.block.2.running_mean" in state,
        "up_mode": "upsample" if "unet.up_path.0.up.1.weight" in state else "upconv",
    }


def _unsafe_part(text: str) -> str | None:
    """What a refused safe load asked for (``"posix.system"``), ``"code"`` when torch does not say, None when the
    error is not a refusal (a truncated or garbled file). PyTorch's advice to load unsafely is left out."""
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks for {found.group(1)}"
    if "Weights only load failed" in text:
        operand = re.search(r"Unsupported operand (\d+)", text)
        if operand is None:
            return "it needs pickled objects"
        code = int(operand.group(1))
        if code not in _PICKLE_OPCODES:
            return None  # not a pickle operation at all: garbage, not code
        return f"it uses the pickle operation {pickletools.code2op[chr(code)].name}"
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


# --- writing -------------------------------------------------------------------
_PLAIN_SCALARS = (bool, int, float, str)


def _check_plain(value: Any, where: str, path: Path) -> Any:
    """A copy of ``value`` that ``weights_only`` loading can read back, or an error.

    Subclasses of the plain scalars (``torch.__version__``, ``numpy.float64``)
    would be pickled as their own classes, which a safe load refuses, so they
    are stored as the plain type they extend.
    """
    if value is None or type(value) in _PLAIN_SCALARS or isinstance(value, torch.Tensor):
        return value
    for plain in _PLAIN_SCALARS:
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, dict):
        for key in value:
            if type(key) not in (str, int):
                raise CheckpointError(f"{where} has a key of type {type(key).__name__}; use str or int", path)
        return {key: _check_plain(item, f"{where}[{key!r}]", path) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_check_plain(item, f"{where}[{i}]", path) for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise CheckpointError(
        f"{where} holds a {type(value).__name__}, which a safe (weights-only) load cannot read; "
        "store plain values (str, numbers, lists, dicts, tensors)",
        path,
    )


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
