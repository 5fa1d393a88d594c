"""The models behind the server: loaded once in the background, then classify (batched) and detect (one at a time)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from engine.checkpoints import weights_sha256
from engine.crops import CLASSIFIER_CROP, classifier_input
from engine.lesion_size import inscribed_diameter_mm, size_aware_probability
from engine.serve.batcher import DynamicBatcher
from engine.serve.metrics import ServerMetrics
from engine.serve.upload import DEFAULT_MAX_UPLOAD

#: Bytes of one float32 crop.
CROP_BYTES = 4 * int(np.prod(CLASSIFIER_CROP))


@dataclass(frozen=True)
class ServerSettings:
    """Limits and batching of a server.

    Args:
        max_batch: Most crops per classifier call.
        max_wait_ms: Longest a classify request waits for others to join its batch.
        max_queue: Most classify requests waiting; more get 503.
        max_crops: Most crops in one classify request (413 beyond).
        max_upload: Most bytes of one CT upload (413 beyond).
        max_detect_waiting: Most CT uploads waiting for the detector; more get 503.
        retry_after_s: The ``Retry-After`` of a 503.
    """

    max_batch: int = 32
    max_wait_ms: float = 10.0
    max_queue: int = 256
    max_crops: int = 1024
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_detect_waiting: int = 2
    retry_after_s: int = 1


class DetectorBusy(Exception):
    """Too many CT uploads are waiting for the detector."""


def _heads(model: torch.nn.Module) -> dict[str, list[float]]:
    """The model's size and shape heads' coefficients, for ``/v1/models`` (the clients apply them)."""
    heads = {}
    for name in ("size", "shape"):
        coefficients = getattr(model, f"{name}_coefficients", lambda: None)()
        if coefficients is not None:
            heads[f"{name}_head"] = list(coefficients)
    return heads


class ModelService:
    """Loads the detector off the event loop and runs its models for the endpoints.

    Args:
        load_detector: Builds the :class:`~engine.detection.Detector` (called once, on a thread).
        settings: Batching and limits.
        metrics: The server's metrics.
    """

    def __init__(self, load_detector: Callable[[], Any], settings: ServerSettings, metrics: ServerMetrics) -> None:
        self._load_detector = load_detector
        self.settings = settings
        self.metrics = metrics
        self.detector: Any = None
        self.batcher: DynamicBatcher | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.models: list[dict[str, str]] = []
        self._detect_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect-worker")
        self._detect_waiting = 0
        self._detect_lock = threading.Lock()
        self._loader: threading.Thread | None = None

    def start(self) -> None:
        """Start loading the models on a background thread."""
        self._loader = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        try:
            detector = self._load_detector()
            demo = _demo_model_ids()
            self.models = [
                {"kind": kind, "model_id": detector.model_ids[kind], "sha256": weights_sha256(model.state_dict()),
                 "demo": detector.model_ids[kind] == demo.get(kind),
                 **_heads(model)}
                for kind, model in (
                    ("segmentation", detector.segmentation),
                    ("classifier", detector.classifier),
                    ("malignancy", detector.malignancy),
                )
            ]
            self.detector = detector
            self.batcher = DynamicBatcher(
                self.predict, self.settings.max_batch, self.settings.max_wait_ms, self.settings.max_queue, self.metrics
            )
            self.batcher.start()
            self.ready.set()
        except Exception as exc:  # reported by /ready; the process keeps answering /health
            self.error = str(exc)

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(p_nodule, p_malignant)`` float64 ``(N,)`` of float32 HU crops ``(N, 32, 48, 48)`` (worker thread)."""
        detector = self.detector
        x = classifier_input(torch.from_numpy(crops)).to(detector.device)
        with torch.inference_mode():
            p_nodule = detector.classifier(x)[1][:, 1].double().cpu().numpy()
            p_malignant = detector.malignancy(x)[1][:, 1].double().cpu().numpy()
        return p_nodule, p_malignant

    def size_aware(
        self, crops: np.ndarray, spacing: tuple[float, float, float] | None, p_malignant: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        """``p_malignant`` with the malignancy model's size head applied, and whether it was.

        Needs the crops' voxel spacing (``?spacing=`` of ``/v1/classify``); without
        it, or for a model without a size head, the CNN's probabilities come back as they are.
        """
        coefficients = self.detector.malignancy.size_coefficients()
        if coefficients is None or spacing is None:
            return p_malignant, False
        diameters = inscribed_diameter_mm(crops, spacing)
        return size_aware_probability(coefficients, p_malignant, diameters), True

    def submit_detect(self, work: Callable[[], Any]) -> Future:
        """Queue a detection job (one runs at a time).

        Raises:
            DetectorBusy: ``max_detect_waiting`` jobs are queued or running already.
        """
        with self._detect_lock:
            if self._detect_waiting >= self.settings.max_detect_waiting:
                raise DetectorBusy
            self._detect_waiting += 1

        def job() -> Any:
            try:
                return work()
            finally:
                with self._detect_lock:
                    self._detect_waiting -= 1

        return self._detect_pool.submit(job)

    def stop(self) -> None:
        """Finish queued classify requests and detections, then stop the workers."""
        if self.batcher is not None:
            self.batcher.stop()
        self._detect_pool.shutdown(wait=True)


def _demo_model_ids() -> dict[str, str]:
    """Model ids of the shipped demo weights (``/v1/models`` says which models are the demo ones)."""
    from engine.checkpoints import load_checkpoint
    from engine.detection.weights import default_weight_paths
    from engine.errors import EngineError

    ids = {}
    for kind, path in default_weight_paths().items():
        try:
            ids[kind] = load_checkpoint(path, expected_kind=kind).model_id
        except EngineError:  # no demo weights in this installation: no model is the demo one
            continue
    return ids
