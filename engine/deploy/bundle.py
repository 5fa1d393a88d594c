"""Export the three models into one folder, check every file, write the manifest, publish atomically.

Everything is written into a hidden staging folder next to ``out_dir`` and
renamed into place only when every equivalence check has passed, so a failed
or interrupted export leaves no half-written folder behind (an earlier export
in ``out_dir`` stays as it was until the new one is complete).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from torch import nn

from engine.checkpoints import Checkpoint, load_checkpoint
from engine.choices import DEFAULT_WEIGHT_NAMES, MODEL_ROLES
from engine.deploy.errors import EquivalenceError, ExportError
from engine.deploy.export import EXPORTERS, FORMATS, TOLERANCE, check_equivalence, eager_predictor, exported_predictor, size_multiple
from engine.deploy.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, file_entry, file_sha256, tool_versions, write_manifest
from engine.deploy.samples import phantom_crops, phantom_slices
from engine.deploy.specs import OPSET, spec_for
from engine.files import replace_directory
from engine.paths import MODELS_DIR

#: Phantom seed of the inputs the checks run on.
CHECK_SEED = 7

Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportRequest:
    """What ``python main.py export`` was asked for.

    Args:
        out_dir: The export folder to create (or replace, when it holds an earlier export).
        checkpoints: Checkpoint path per model kind (missing kinds: the demo weights).
        formats: Any of :data:`~engine.deploy.export.FORMATS`.
        quantize: ``"int8"`` to add statically quantized classifier and malignancy ONNX files.
        tolerance: Largest probability difference an export may show.
        check_seed: Phantom seed of the check inputs.
        kinds: The model kinds to export.
    """

    out_dir: Path
    checkpoints: Mapping[str, Path] = field(default_factory=dict)
    formats: tuple[str, ...] = tuple(FORMATS)
    quantize: str | None = None
    tolerance: float = TOLERANCE
    check_seed: int = CHECK_SEED
    kinds: tuple[str, ...] = MODEL_ROLES

    def check(self) -> None:
        """Raise :class:`ExportError` for unknown formats, kinds or quantization."""
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ExportError(f"unknown export format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
        if any(kind not in MODEL_ROLES for kind in self.kinds):
            raise ExportError(f"unknown model kind among {self.kinds}; choose from {', '.join(MODEL_ROLES)}")
        if self.quantize not in (None, "int8"):
            raise ExportError(f"unknown quantization {self.quantize!r}; only int8 is supported")
        if self.quantize and "onnx" not in self.formats:
            raise ExportError("--quantize int8 quantizes the ONNX files: include onnx in --format")


def checkpoint_paths(given: Mapping[str, str | Path | None], kinds: tuple[str, ...] = MODEL_ROLES) -> dict[str, Path]:
    """The checkpoint of each kind: the given path, else the demo weights in ``resources/models``."""
    return {kind: Path(given.get(kind) or MODELS_DIR / DEFAULT_WEIGHT_NAMES[kind]) for kind in kinds}


def check_inputs(seed: int) -> dict[str, list[np.ndarray]]:
    """Input batches of the checks: phantom crops (batches of 1 and the rest) and context stacks."""
    crops = phantom_crops([seed], negatives_per_series=10, nodules_per_series=4).crops
    crop_batches = [crops[:1], crops[1:]]
    return {"segmentation": phantom_slices(seed), "classifier": crop_batches, "malignancy": crop_batches}


def export_models(request: ExportRequest, log: Log = print) -> dict[str, Any]:
    """Export, check and publish; see the module docstring.

    Args:
        request: What to export and where.
        log: Receives one line per step (the command prints them).

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        ExportError: bad request, an export failed, or ``out_dir`` is a folder
            that holds something other than an earlier export.
        EquivalenceError: an exported file differs from the eager model beyond the tolerance.
        CheckpointError: a checkpoint cannot be loaded.
    """
    request.check()
    out_dir = Path(request.out_dir)
    _check_destination(out_dir)
    paths = checkpoint_paths(request.checkpoints, request.kinds)
    loaded = {kind: load_checkpoint(path, expected_kind=kind) for kind, path in paths.items()}
    inputs = check_inputs(request.check_seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the published folder gets the usual mode
    try:
        models = {}
        for kind, checkpoint in loaded.items():
            models[kind] = _export_one(kind, checkpoint, inputs[kind], staging, request, log)
        if request.quantize == "int8":
            from engine.deploy.quantize import quantize_classifiers

            quantize_classifiers(models, staging, log)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "note": "not for clinical use",
            "opset": OPSET,
            "tolerance": request.tolerance,
            "versions": tool_versions(),
            "check_inputs": {
                "phantom_seed": request.check_seed,
                "phantom_preset": "small",
                "crops": int(sum(b.shape[0] for b in inputs["classifier"])),
                "slices": int(sum(b.shape[0] for b in inputs["segmentation"])),
            },
            "models": models,
        }
        write_manifest(staging, manifest)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"wrote {out_dir} ({MANIFEST_NAME} and {sum(len(m['files']) for m in models.values())} model files)")
    return manifest


def _export_one(
    kind: str, checkpoint: Checkpoint, batches: list[np.ndarray], staging: Path, request: ExportRequest, log: Log
) -> dict[str, Any]:
    model: nn.Module = checkpoint.model.cpu().eval()
    spec = spec_for(kind, getattr(model, "input_batchnorm", None) and model.input_batchnorm.num_features)
    multiple = size_multiple(model)
    reference = eager_predictor(model, spec)
    files = {}
    for fmt in request.formats:
        path = staging / f"{kind}{FORMATS[fmt]}"
        EXPORTERS[fmt](model, spec, batches[0] if batches[0].shape[0] > 1 else batches[-1], path)
        result = check_equivalence(reference, exported_predictor(path, fmt, spec, multiple or 1), batches, fmt, request.tolerance)
        verdict = "ok" if result.passed else "FAILED"
        log(f"{kind:12} {fmt:11} max |Δp| = {result.max_abs_dp:.2e} on {result.samples} samples (≤ {request.tolerance:g}: {verdict})")
        if not result.passed:
            raise EquivalenceError(
                f"the {fmt} export of the {kind} model differs from the eager model: max |Δp| = "
                f"{result.max_abs_dp:.3g} > {request.tolerance:g}; nothing was written"
            )
        files[fmt] = file_entry(path, fmt, result.to_json())
    return {
        "source": {
            "path": str(checkpoint.path),
            "file_sha256": file_sha256(checkpoint.path),
            "weights_sha256": checkpoint.sha256,
            "model_id": checkpoint.model_id,
            "source_format": checkpoint.source_format,
            "model_args": dict(checkpoint.model_args),
        },
        "interface": spec.to_json(multiple),
        "files": files,
        **_size_head(checkpoint.model),
        **_shape_head(checkpoint.model),
    }


def _size_head(model: nn.Module) -> dict[str, Any]:
    """The malignancy model's size head, which the exported files (the CNN alone) leave to their user."""
    coefficients = getattr(model, "size_coefficients", lambda: None)()
    if coefficients is None:
        return {}
    return {"size_head": {
        "coefficients": list(coefficients),
        "formula": "p_malignant = sigmoid(a * logit(p_cnn) + b * ln(diameter_mm) + c), (a, b, c) = coefficients",
        "diameter_mm": "the inscribed diameter at -700 HU of the crop's lesion "
                       "(engine.lesion_size.inscribed_diameter_mm; needs the voxel spacing)",
        "note": "the exported files give p_cnn; apply this to get the detector's p_malignant",
    }}


def _shape_head(model: nn.Module) -> dict[str, Any]:
    """The nodule classifier's shape head, which the exported files (the CNN alone) leave to their user."""
    from engine.lesion_shape import INPUT_NAMES, SIGMAS_MM

    coefficients = getattr(model, "shape_coefficients", lambda: None)()
    if coefficients is None:
        return {}
    return {"shape_head": {
        "coefficients": list(coefficients),
        "inputs": list(INPUT_NAMES),
        "formula": "p_nodule = sigmoid(sum(w_i * input_i) + c), (*w, c) = coefficients, inputs in that order",
        "inputs_note": "logit of the CNN's p; at the candidate's centre in its crop, for sigma in "
                       f"{list(SIGMAS_MM)} mm: the ascending eigenvalues of sigma^2 times the Hessian of the "
                       "Gaussian-smoothed (HU + 1000), outside the crop 0, and the smoothed HU; ln of the "
                       "equivalent-sphere diameter (mm) and of the voxel count of the candidate's segmented "
                       "region (engine.lesion_shape)",
        "note": "the exported files give p_cnn; apply this to a grouped candidate to get the detector's p_nodule",
    }}


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _check_destination(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError("exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise ExportError("the folder is not empty and holds no earlier export; choose a new or empty folder", out_dir)


def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the staging folder to ``out_dir``; an earlier export there is replaced only after that."""
    replace_directory(staging, out_dir)
