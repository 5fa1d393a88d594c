"""The exported ONNX models run in ONNX Runtime, called like the torch models.

>>> classifier = load_onnx_model("export/classifier.onnx")   # OnnxClassifier
>>> logits, probabilities = classifier(crops)                 # (N, 1, 32, 48, 48) → (N, 2), (N, 2)
>>> segmentation = load_onnx_model("export/segmentation.onnx")
>>> probability = segmentation(slices)                       # (N, 7, H, W) → (N, 1, H, W)

A numpy array in gives numpy arrays out; a torch tensor in gives torch tensors
on the input's device (float32). The kind and the size multiple are read from
the metadata the exporter writes into the file, so a caller (the detector's
future ``backend="onnx"``) needs only the path. The CPU execution provider is
always there; the CUDA provider is used for ``device="cuda"`` (or ``"auto"``)
when this ONNX Runtime build has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.deploy.errors import ExportedModelError
from engine.deploy.specs import ModelSpec, spec_for

#: Metadata keys the exporter writes into every ONNX file.
KIND_KEY = "lungcad_kind"
SIZE_MULTIPLE_KEY = "lungcad_size_multiple"


def execution_providers(device: str = "cpu") -> list[str]:
    """ONNX Runtime providers for a device name (``cpu``, ``cuda``, ``auto``), best first.

    Raises:
        ExportedModelError: ``cuda`` asked for but this onnxruntime build has no CUDA provider.
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise ExportedModelError(
            "ONNX Runtime has no CUDA provider here (the onnxruntime package is the CPU build; "
            "install onnxruntime-gpu for CUDA)"
        )
    if device in ("cuda", "auto") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel:
    """An ONNX Runtime session for one exported model.

    Args:
        path: The ``.onnx`` file.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (see :func:`execution_providers`).
        threads: Intra-op threads (None: ONNX Runtime's default, the core count).

    Raises:
        ExportedModelError: the file is missing or not an ONNX model ONNX Runtime can load.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportedModelError("no such ONNX file", self.path)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; its warnings are about graph details
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=execution_providers(device))
        except ExportedModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ExportedModelError(f"ONNX Runtime cannot load the model: {exc}", self.path) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)
        self.kind: str | None = meta.get(KIND_KEY)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.providers: list[str] = list(self.session.get_providers())

    @property
    def spec(self) -> ModelSpec | None:
        """The interface of the model's kind, when the file says which kind it is."""
        return spec_for(self.kind) if self.kind else None

    def run_numpy(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the session on one float32 batch and return every output.

        Raises:
            ExportedModelError: the input does not fit the model (wrong rank or sizes).
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        try:
            return self.session.run(self.output_names, {self.input_name: batch})
        except Exception as exc:  # InvalidArgument, Fail, ... from onnxruntime
            raise ExportedModelError(f"ONNX Runtime rejected a {batch.shape} input: {exc}", self.path) from None


def _as_numpy(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, torch.device | None]:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy(), x.device
    return np.asarray(x, dtype=np.float32), None


def _like_input(array: np.ndarray, device: torch.device | None) -> Any:
    if device is None:
        return array
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


class OnnxClassifier(OnnxModel):
    """The nodule or malignancy classifier in ONNX Runtime: crops in, ``(logits, probabilities)`` out."""

    def __call__(self, crops: np.ndarray | torch.Tensor) -> tuple[Any, Any]:
        """Classify a batch of crops.

        Args:
            crops: ``(N, 1, 32, 48, 48)`` float, HU clipped to [-1000, 1000] (numpy or torch).

        Returns:
            ``(logits, probabilities)``, ``(N, 2)`` each, numpy or torch like the input.
        """
        array, device = _as_numpy(crops)
        if array.shape[0] == 0:
            empty = np.zeros((0, 2), dtype=np.float32)
            return _like_input(empty, device), _like_input(empty.copy(), device)
        logits, probabilities = self.run_numpy(array)[:2]
        return _like_input(logits, device), _like_input(probabilities, device)

    def positive_probability(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """float64 ``(N,)`` probability of class 1 (nodule, or malignant)."""
        array, _ = _as_numpy(crops)
        if array.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return self.run_numpy(array)[1][:, 1].astype(np.float64)


class OnnxSegmentation(OnnxModel):
    """The segmentation model in ONNX Runtime: context stacks in, probabilities out, any height and width.

    The exported graph takes sides in multiples of ``size_multiple``; other
    sizes are padded by repeating the edge and the output is cropped back,
    which is what the torch model does inside.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(path, device, threads)
        self.size_multiple = int(self.metadata.get(SIZE_MULTIPLE_KEY, "1"))

    def __call__(self, slices: np.ndarray | torch.Tensor) -> Any:
        """Segment a batch.

        Args:
            slices: ``(N, C, H, W)`` float context stacks, HU clipped to [-1000, 1000].

        Returns:
            ``(N, 1, H, W)`` probabilities, numpy or torch like the input.
        """
        array, device = _as_numpy(slices)
        if array.ndim != 4:
            raise ExportedModelError(f"segmentation input must be (N, C, H, W), got {array.shape}", self.path)
        height, width = array.shape[-2:]
        pad_h = -height % self.size_multiple
        pad_w = -width % self.size_multiple
        if pad_h or pad_w:
            array = np.pad(array, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        out = self.run_numpy(array)[0][..., :height, :width]
        return _like_input(np.ascontiguousarray(out), device)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The custom metadata of an ONNX file (without loading its weights).

    Raises:
        ExportedModelError: the file is missing or not an ONNX model.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportedModelError("no such ONNX file", path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not a model
        raise ExportedModelError(f"not an ONNX model: {exc}", path) from None
    return {prop.key: prop.value for prop in model.metadata_props}


def load_onnx_model(
    path: str | Path, kind: str | None = None, device: str = "cpu", threads: int | None = None
) -> OnnxClassifier | OnnxSegmentation:
    """Open an exported ONNX model as the wrapper of its kind.

    Args:
        path: The ``.onnx`` file written by ``python main.py export``.
        kind: The kind the caller needs (``segmentation``, ``classifier``,
            ``malignancy``); None accepts the kind the file names.
        device: As for :class:`OnnxModel`.
        threads: As for :class:`OnnxModel`.

    Raises:
        ExportedModelError: the file is unreadable, names no kind, or holds another kind.
    """
    found = read_metadata(path).get(KIND_KEY)
    if found is None:
        raise ExportedModelError(f"the ONNX file does not say which model it is (no {KIND_KEY} metadata)", path)
    compatible = found == kind or {found, kind} <= {"classifier", "malignancy"}
    if kind is not None and not compatible:
        raise ExportedModelError(f"holds a {found} model, but a {kind} model is needed here", path)
    wrapper = OnnxSegmentation if found == "segmentation" else OnnxClassifier
    return wrapper(path, device, threads)
