"""The ONNX Runtime backend of the detector: models exported on first use, cached by their weights.

``DetectorConfig(backend="onnx")`` runs the segmentation U-Net and both
classifiers in ONNX Runtime; ``backend="auto"`` runs each stage in the runtime
that measured faster on the device (:func:`stage_backends`, numbers in
``docs/benchmarks.md``). The ONNX files come from :mod:`engine.deploy.export`
(the torch 2.x exporter) and are kept in the user-data cache
(``<user data>/cache/onnx``) under a name made of the model kind and the
sha256 of its weights (the checkpoint's ``sha256``, :func:`~engine.checkpoints.weights_sha256`),
the ONNX opset and the torch version. A file is created the first time a
detector needs it: exported to a temporary name, checked against the eager
model on phantom slices and crops (largest probability difference ≤ 1e-4,
else :class:`~engine.deploy.errors.EquivalenceError`) and only then renamed
into place, so the cache never holds an unchecked or half-written model.

ONNX Runtime runs float32 whatever the precision policy says; on a CUDA
device it uses its CUDA execution provider when this onnxruntime build has one
(``onnxruntime-gpu``), else the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from engine import paths
from engine.checkpoints import weights_sha256
from engine.crops import CLASSIFIER_CROP, classifier_input, gather_crops_torch
from engine.detection.runtime import StageReporter, run_in_batches

#: Stages whose runtime a backend choice decides.
BACKEND_STAGES = ("segmentation", "classification")
#: The faster runtime per stage on a CPU, measured (docs/benchmarks.md): ONNX Runtime runs the
#: U-Net in ~0.6× the CPU time of the folded channels-last torch model; for the classifiers
#: torch's channels-last 3D convolutions tie with it and compute the shared trunk once.
AUTO_CPU = {"segmentation": "onnx", "classification": "torch"}

Log = Callable[[str], None]


def onnx_available() -> bool:
    """True when the ``onnxruntime`` package can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def stage_backends(backend: str, device: torch.device) -> dict[str, str]:
    """``{stage: "torch" | "onnx"}`` for :data:`BACKEND_STAGES`.

    Args:
        backend: ``"torch"``, ``"onnx"`` or ``"auto"`` (:data:`AUTO_CPU` on the CPU when
            onnxruntime is installed; torch on GPUs, where no ONNX Runtime measurement exists yet).
        device: The detector's device.
    """
    if backend == "auto":
        if device.type == "cpu" and onnx_available():
            return dict(AUTO_CPU)
        return {stage: "torch" for stage in BACKEND_STAGES}
    return {stage: backend for stage in BACKEND_STAGES}


def onnx_cache_dir() -> Path:
    """Where the exported models are kept: ``<user data>/cache/onnx``."""
    return paths.cache_dir() / "onnx"


def cache_path(model: nn.Module, kind: str, folder: Path | None = None) -> Path:
    """The cache file of ``model``: kind, weights sha256, opset and torch version in the name."""
    from engine.deploy.specs import OPSET

    torch_version = torch.__version__.split("+")[0]
    sha = weights_sha256(model.state_dict())
    return (folder or onnx_cache_dir()) / f"{kind}-{sha[:20]}-opset{OPSET}-torch{torch_version}.onnx"


def cached_onnx(model: nn.Module, kind: str, *, folder: Path | None = None, log: Log | None = None) -> Path:
    """The checked ONNX file of ``model``, exporting and checking it first when it is not cached.

    Args:
        model: A :class:`~engine.models.segmentation.SegmentationModel` or
            :class:`~engine.models.classifier.NoduleClassifier` (eval mode, any device).
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        folder: Cache folder (default :func:`onnx_cache_dir`).
        log: Receives a line when an export happens.

    Returns:
        The path of the cached file.

    Raises:
        ExportError: the export failed.
        EquivalenceError: the exported model differs from the eager one beyond 1e-4.
    """
    import copy

    from engine.deploy.bundle import CHECK_SEED, check_inputs
    from engine.deploy.errors import EquivalenceError
    from engine.deploy.export import TOLERANCE, check_equivalence, eager_predictor, export_onnx, exported_predictor
    from engine.deploy.specs import spec_for
    from engine.files import atomic_path

    path = cache_path(model, kind, folder)
    if path.is_file():
        return path
    began = time.perf_counter()
    eager = copy.deepcopy(model).to(device="cpu", memory_format=torch.contiguous_format).eval()
    spec = spec_for(kind)
    batches = check_inputs(CHECK_SEED)[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        export_onnx(eager, spec, batches[0], temp)
        outcome = check_equivalence(eager_predictor(eager, spec), exported_predictor(temp, "onnx", spec), batches, "onnx")
        if not outcome.passed:
            raise EquivalenceError(
                f"the ONNX export of the {kind} model differs from torch by {outcome.max_abs_dp:.2e} "
                f"(limit {TOLERANCE:g}); use --backend torch"
            )
    if log is not None:
        log(
            f"{kind}: exported to ONNX for the onnx backend in {time.perf_counter() - began:.1f} s "
            f"(max |Δp| {outcome.max_abs_dp:.1e} on the check inputs), cached as {path}"
        )
    return path


def onnx_device(device: torch.device) -> str:
    """The :func:`~engine.deploy.onnx_runtime.execution_providers` name for a torch device."""
    return "auto" if device.type == "cuda" else "cpu"


def load_session(model: nn.Module, kind: str, device: torch.device, threads: int, notes: list[str]):
    """An ONNX Runtime wrapper (:mod:`engine.deploy.onnx_runtime`) for ``model``, exported first if needed.

    Args:
        model: The torch model.
        kind: Its role.
        device: The detector's device (CUDA: the CUDA provider when present).
        threads: Intra-op threads.
        notes: Receives the export line and a line when a GPU run falls back to the CPU provider.
    """
    from engine.deploy.onnx_runtime import load_onnx_model

    path = cached_onnx(model, kind, log=notes.append)
    session = load_onnx_model(path, kind, device=onnx_device(device), threads=threads)
    if device.type == "cuda" and "CUDAExecutionProvider" not in session.providers:
        notes.append(f"{kind}: this onnxruntime has no CUDA provider; the onnx backend runs it on the CPU")
    return session


def classify_crops_onnx(
    session,
    volume: torch.Tensor,
    starts: np.ndarray,
    *,
    batch_size: int,
    reporter: StageReporter,
    notes: list[str],
) -> np.ndarray:
    """Positive-class probability of an ONNX classifier for the crops starting at ``starts``.

    Args:
        session: An :class:`~engine.deploy.onnx_runtime.OnnxClassifier`.
        volume: int16 ``(I, R, C)`` CT (crops are cut where it lies, then handed to ONNX Runtime).
        starts: int64 ``(N, 3)`` crop starts.
        batch_size: Crops per run.
        reporter: Progress and cancellation.
        notes: Batch-size reductions.

    Returns:
        float64 ``(N,)``.
    """
    n = int(starts.shape[0])
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    starts_t = torch.as_tensor(starts, dtype=torch.int64, device=volume.device)

    def step(start: int, stop: int) -> None:
        crops = gather_crops_torch(volume, starts_t[start:stop], CLASSIFIER_CROP)
        out[start:stop] = session.positive_probability(classifier_input(crops))

    with torch.inference_mode():
        run_in_batches(n, batch_size, step, device=volume.device, reporter=reporter, notes=notes, unit="candidates")
    return out
