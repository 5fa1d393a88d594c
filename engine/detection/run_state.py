"""State of one :meth:`Detector.detect` or :meth:`Detector.regroup` call.

The device in use (a GPU stage that runs out of memory moves to the CPU), the
CT on each device, the notes, and wall and CPU seconds per stage.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Mapping

import torch

from engine.detection.runtime import Cancelled, Progress, StageOutOfMemory, StageReporter, synchronize, tensor_view
from engine.devices import precision_policy
from engine.errors import DeviceError
from engine.io.volume import CtVolume

if TYPE_CHECKING:
    from engine.detection.detector import Detector

#: Overall progress fraction span of each stage of :meth:`Detector.detect`.
STAGE_SPAN = {
    "lung search": (0.0, 0.02),
    "segmentation": (0.02, 0.75),
    "grouping": (0.75, 0.78),
    "classification": (0.78, 0.92),
    "malignancy": (0.92, 1.0),
}
#: The same for :meth:`Detector.regroup` (no lung search or segmentation).
REGROUP_SPAN = {"grouping": (0.0, 0.15), "classification": (0.15, 0.85), "malignancy": (0.85, 1.0)}


class DetectionRun:
    """State of one detect/regroup call: device in use, CT on the device, notes, timings."""

    def __init__(
        self,
        detector: Detector,
        ct: CtVolume,
        progress: Progress | None,
        cancelled: Cancelled | None,
        spans: Mapping[str, tuple[float, float]] = STAGE_SPAN,
    ) -> None:
        self.detector = detector
        self.spans = spans
        self.ct = ct
        self.progress = progress
        self.cancelled = cancelled
        self.policy = detector.policy
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # process CPU time (all threads) per stage
        self._volumes: dict[torch.device, torch.Tensor] = {}

    @property
    def device_used(self) -> torch.device:
        return self.policy.device

    @property
    def precision_used(self) -> str:
        return self.policy.name

    def volume(self, device: torch.device) -> torch.Tensor:
        """The CT as an int16 tensor on ``device`` (one copy per device, a view on the CPU)."""
        if device not in self._volumes:
            self._volumes[device] = tensor_view(self.ct.hu).to(device)
        return self._volumes[device]

    def reporter(self, stage: str) -> StageReporter:
        start, end = self.spans[stage]
        return StageReporter(self.progress, self.cancelled, start, end, stage)

    def timed(self, key: str, stage: str, work: Callable[[torch.device], object]):
        """Run ``work(device)``; on out-of-memory on a GPU, rerun it on the CPU and say so."""
        self.reporter(stage).check()
        began = time.perf_counter()
        cpu_began = time.process_time()
        try:
            value = work(self.policy.device)
        except StageOutOfMemory as exc:
            if self.policy.device.type == "cpu":
                raise DeviceError(f"{exc}: the CT is too large for this computer's memory") from None
            failed = self.policy.device
            cpu = torch.device("cpu")
            self.policy = precision_policy(cpu, "float32")
            self._volumes.pop(failed, None)
            self.notes.append(f"{stage}: out of memory on {failed} even with a batch of 1; fell back to the CPU")
            value = work(cpu)
        synchronize(self.policy.device)
        self.timings[key] = time.perf_counter() - began
        self.cpu_seconds[key] = time.process_time() - cpu_began
        self.reporter(stage).report(1.0)
        return value
