"""Running a detection stage: batches, progress, cancellation and out-of-memory handling.

A stage processes ``n`` items (slices or candidates) in batches. Between
batches it reports progress and polls ``cancelled()``. When a batch runs out
of memory it is retried with half the batch size; if even one item does not
fit, :class:`StageOutOfMemory` tells the detector to move the stage to the CPU.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engine.devices import is_out_of_memory, release_cached_memory
from engine.errors import CancelledError

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]


class StageOutOfMemory(Exception):
    """A stage ran out of device memory even with a batch of one item.

    Args:
        stage: The stage's name.
        device: The device that ran out of memory.
    """

    def __init__(self, stage: str, device: torch.device) -> None:
        super().__init__(f"{stage}: out of memory on {device} even with a batch of 1")
        self.stage = stage
        self.device = device


@dataclass
class StageReporter:
    """Maps a stage's own progress onto ``[start, end]`` of the overall progress.

    Args:
        progress: The caller's ``progress(fraction, text)``, or None.
        cancelled: The caller's ``cancelled() -> bool``, or None.
        start: Overall fraction when the stage begins.
        end: Overall fraction when it ends.
        label: Stage text shown to the user.
    """

    progress: Progress | None
    cancelled: Cancelled | None
    start: float
    end: float
    label: str

    def check(self) -> None:
        """Raise :class:`~engine.errors.CancelledError` if the caller asked to stop."""
        if self.cancelled is not None and self.cancelled():
            raise CancelledError(f"detection cancelled during {self.label}")

    def report(self, fraction: float, detail: str = "") -> None:
        """Report the stage ``fraction`` (0..1) done."""
        if self.progress is not None:
            text = f"{self.label} {detail}".strip()
            self.progress(self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0), text)


def run_in_batches(
    n_items: int,
    batch_size: int,
    step: Callable[[int, int], None],
    *,
    device: torch.device,
    reporter: StageReporter,
    notes: list[str],
    unit: str = "items",
) -> int:
    """Call ``step(start, stop)`` over ``range(n_items)`` in batches, halving them on out-of-memory.

    Args:
        n_items: Items to process.
        batch_size: Items per call to start with.
        step: Processes items ``[start, stop)``; must not keep partial results of a
            failed call (a batch is redone after an out-of-memory error).
        device: Device the step runs on (its cache is released after an OOM).
        reporter: Progress and cancellation of this stage.
        notes: Receives a line for each batch-size reduction.
        unit: Word for the items in progress texts.

    Returns:
        The batch size that finally worked.

    Raises:
        CancelledError: ``cancelled()`` became true between batches.
        StageOutOfMemory: a single item does not fit in memory.
    """
    start = 0
    size = max(1, int(batch_size))
    reporter.report(0.0, f"0/{n_items} {unit}")
    while start < n_items:
        reporter.check()
        stop = min(n_items, start + size)
        try:
            step(start, stop)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            release_cached_memory(device)
            if size == 1:
                raise StageOutOfMemory(reporter.label, device) from exc
            notes.append(f"{reporter.label}: out of memory on {device} with batches of {size}; retried with {size // 2}")
            size //= 2
            continue
        start = stop
        reporter.report(start / n_items, f"{start}/{n_items} {unit}")
    return size


def tensor_view(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing ``array``'s memory, also for read-only arrays.

    The detector only ever reads these tensors, so PyTorch's warning about
    non-writable arrays does not apply and is silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that stage timings are true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
