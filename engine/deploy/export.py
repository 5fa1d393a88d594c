"""Export one model as ONNX, TorchScript or a ``torch.export`` program, and check it against eager.

* ONNX: ``torch.onnx.export(..., dynamo=True)`` (the torch 2.x exporter, graphs
  translated by onnxscript), opset :data:`~engine.deploy.specs.OPSET`, dynamic
  batch; the segmentation model also has dynamic height and width in multiples
  of its size multiple (4 for depth 3; :class:`~engine.deploy.onnx_runtime.OnnxSegmentation`
  pads other sizes). The kind and size multiple are stored as ONNX metadata.
* TorchScript: ``torch.jit.trace`` (the book's format, loadable from LibTorch);
  the segmentation model is traced through :class:`PaddedSegmentation`, which
  pads and crops on every call, so the file takes any height and width.
* ``torch.export``: an :class:`~torch.export.ExportedProgram` saved with
  ``torch.export.save`` (``.pt2``), same dynamic axes as ONNX.

:func:`check_equivalence` runs an exported file (in ONNX Runtime for ONNX) and
the eager model on the same inputs and measures the largest probability difference.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.deploy.errors import EquivalenceError, ExportError, ExportedModelError
from engine.deploy.onnx_runtime import KIND_KEY, SIZE_MULTIPLE_KEY, load_onnx_model
from engine.deploy.specs import MAX_BATCH, MAX_SIDE, OPSET, ModelSpec
from engine.models.segmentation import SegmentationModel

#: Export formats and their file suffixes.
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".ts", "exported": ".pt2"}
#: Largest probability difference an export may show against the eager model.
TOLERANCE = 1e-4

Predictor = Callable[[np.ndarray], np.ndarray]


class PaddedSegmentation(nn.Module):
    """The segmentation model with its padding always applied (pad by 0 when the size fits).

    Same function as :class:`SegmentationModel`, but without the size-dependent
    branch, so a trace records the padding arithmetic on the input's shape and
    works for any height and width.

    Args:
        model: The segmentation model (its modules are shared, not copied).
    """

    def __init__(self, model: SegmentationModel) -> None:
        super().__init__()
        self.model = model
        self.multiple = model.unet.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` HU-clipped float → ``(N, 1, H, W)`` probabilities."""
        height, width = x.shape[-2], x.shape[-1]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        y = F.pad(self.model.input_batchnorm(x), (0, pad_w, 0, pad_h), mode="replicate")
        return self.model.final(self.model.unet(y))[..., :height, :width]


def size_multiple(model: nn.Module) -> int | None:
    """Height/width multiple the ONNX and torch.export files need (segmentation), else None."""
    return model.unet.size_multiple if isinstance(model, SegmentationModel) else None


def _dynamic_shapes(model: nn.Module) -> tuple[dict[int, Any]]:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    multiple = size_multiple(model)
    if multiple is None:
        return ({0: batch},)
    side = MAX_SIDE // multiple
    height = torch.export.Dim("height_blocks", min=1, max=side)
    width = torch.export.Dim("width_blocks", min=1, max=side)
    return ({0: batch, 2: multiple * height, 3: multiple * width},)


def _trace_sample(model: nn.Module, sample: np.ndarray) -> torch.Tensor:
    """A batch of 2 to trace with (2 rather than 1, so the batch axis is not specialised)."""
    x = torch.from_numpy(np.ascontiguousarray(sample[:2], dtype=np.float32))
    if x.shape[0] == 1:
        x = torch.cat([x, x])
    multiple = size_multiple(model)
    if multiple is not None:
        h, w = x.shape[-2:]
        x = x[..., : h - h % multiple, : w - w % multiple]
    return x


class _QuietExport:
    """Silence the exporters' chatter (torchvision-op notes, deprecation notices) during one export."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", module="torch.*")
        self._logger = logging.getLogger("torch.onnx")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
        self._warnings.__exit__(*exc)


def export_onnx(model: nn.Module, spec: ModelSpec, sample: np.ndarray, path: Path) -> None:
    """Write ``model`` as ONNX with the dynamo exporter, names from ``spec``, kind in the metadata.

    Raises:
        ExportError: the exporter failed.
    """
    import onnx

    x = _trace_sample(model, sample)
    try:
        with _QuietExport(), torch.no_grad():
            program = torch.onnx.export(
                model.eval(), (x,), dynamo=True, input_names=[spec.input_name], output_names=spec.output_names,
                dynamic_shapes=_dynamic_shapes(model), opset_version=OPSET, verbose=False, optimize=True,
            )
        proto = program.model_proto
    except Exception as exc:  # the exporter raises many types; the message is what the user needs
        raise ExportError(f"ONNX export of the {spec.kind} model failed: {exc}") from None
    meta = {KIND_KEY: spec.kind, SIZE_MULTIPLE_KEY: str(size_multiple(model) or 1)}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, str(path))


def export_torchscript(model: nn.Module, spec: ModelSpec, sample: np.ndarray, path: Path) -> None:
    """Write ``model`` as a traced TorchScript module (the segmentation model through :class:`PaddedSegmentation`).

    Raises:
        ExportError: tracing failed.
    """
    target = PaddedSegmentation(model) if isinstance(model, SegmentationModel) else model
    x = _trace_sample(model, sample)
    try:
        with _QuietExport(), torch.no_grad():
            traced = torch.jit.trace(target.eval(), (x,), check_trace=False)
            traced.save(str(path))
    except Exception as exc:  # tracing errors come in many types
        raise ExportError(f"TorchScript export of the {spec.kind} model failed: {exc}") from None


def export_program(model: nn.Module, spec: ModelSpec, sample: np.ndarray, path: Path) -> None:
    """Write ``model`` as a ``torch.export`` program (``.pt2``) with dynamic batch (and sides).

    Raises:
        ExportError: torch.export failed.
    """
    x = _trace_sample(model, sample)
    try:
        with _QuietExport():
            program = torch.export.export(model.eval(), (x,), dynamic_shapes=_dynamic_shapes(model))
            torch.export.save(program, str(path))
    except Exception as exc:  # torch.export raises UserError and many others
        raise ExportError(f"torch.export of the {spec.kind} model failed: {exc}") from None


EXPORTERS: dict[str, Callable[[nn.Module, ModelSpec, np.ndarray, Path], None]] = {
    "onnx": export_onnx,
    "torchscript": export_torchscript,
    "exported": export_program,
}


def _probabilities(output: Any, spec: ModelSpec) -> np.ndarray:
    value = output[spec.probability_output] if isinstance(output, (tuple, list)) else output
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def eager_predictor(model: nn.Module, spec: ModelSpec) -> Predictor:
    """Probabilities of the eager torch model on a numpy batch."""

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return _probabilities(model.eval()(torch.from_numpy(batch)), spec)

    return predict


def exported_predictor(path: Path, fmt: str, spec: ModelSpec, multiple: int = 1) -> Predictor:
    """Probabilities of an exported file on a numpy batch (ONNX in ONNX Runtime on the CPU).

    Args:
        path: The exported file.
        fmt: Its format (a key of :data:`FORMATS`).
        spec: The model's interface.
        multiple: Height/width multiple a ``torch.export`` segmentation program needs;
            other sizes are padded by repeating the edge and cropped back.

    Raises:
        ExportedModelError: the file cannot be loaded.
    """
    if fmt == "onnx":
        onnx_model = load_onnx_model(path, spec.kind)
        return lambda batch: _probabilities(onnx_model(batch), spec)
    try:
        with _QuietExport():
            if fmt == "torchscript":
                module = torch.jit.load(str(path), map_location="cpu")
            else:
                module = torch.export.load(str(path)).module()
    except Exception as exc:  # loader errors of either format
        raise ExportedModelError(f"cannot load the {fmt} file: {exc}", path) from None

    def predict(batch: np.ndarray) -> np.ndarray:
        height, width = batch.shape[-2:]
        pad_h, pad_w = (-height % multiple, -width % multiple) if batch.ndim == 4 else (0, 0)
        if pad_h or pad_w:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        with torch.no_grad():
            out = _probabilities(module(torch.from_numpy(np.ascontiguousarray(batch))), spec)
        return out[..., :height, :width] if (pad_h or pad_w) else out

    return predict


@dataclass(frozen=True)
class Equivalence:
    """Outcome of one equivalence check.

    Args:
        fmt: The export format checked.
        max_abs_dp: Largest |p_export - p_eager| over all inputs.
        samples: Number of input samples (crops or slices).
        batches: Shapes of the batches run.
        tolerance: The limit applied.
    """

    fmt: str
    max_abs_dp: float
    samples: int
    batches: tuple[tuple[int, ...], ...]
    tolerance: float

    @property
    def passed(self) -> bool:
        """True when the difference is within the tolerance (and finite)."""
        return bool(np.isfinite(self.max_abs_dp) and self.max_abs_dp <= self.tolerance)

    def to_json(self) -> dict[str, Any]:
        """Plain-value form for the manifest."""
        return {
            "max_abs_dp": self.max_abs_dp, "tolerance": self.tolerance, "passed": self.passed,
            "samples": self.samples, "batches": [list(b) for b in self.batches],
        }


def check_equivalence(
    reference: Predictor, candidate: Predictor, batches: Sequence[np.ndarray], fmt: str, tolerance: float = TOLERANCE
) -> Equivalence:
    """Run both predictors on every batch and measure the largest probability difference.

    Args:
        reference: The eager model.
        candidate: The exported file.
        batches: float32 input batches (several sizes, to exercise the dynamic axes).
        fmt: Name of the format, for messages.
        tolerance: Largest allowed difference.

    Returns:
        The measured :class:`Equivalence` (check ``passed``).

    Raises:
        EquivalenceError: an output has another shape than the eager model's.
    """
    worst = 0.0
    for batch in batches:
        expected = reference(batch)
        got = candidate(batch)
        if got.shape != expected.shape:
            raise EquivalenceError(f"{fmt}: output shape {got.shape} for input {batch.shape}, eager gives {expected.shape}")
        difference = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        worst = max(worst, float(np.nanmax(difference)) if difference.size else 0.0)
        if not np.isfinite(got).all():
            worst = float("inf")
    samples = sum(int(b.shape[0]) for b in batches)
    return Equivalence(fmt, worst, samples, tuple(tuple(int(s) for s in b.shape) for b in batches), tolerance)
