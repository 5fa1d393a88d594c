"""Running a detection stage: batches, progress, cancellation and out-of-memory handling.

A stage processes ``n`` items (slices or candidates) in batches. Between
batches it reports progress and polls ``cancelled()``. When a batch runs out
of memory it is retried with half the batch size; if even one item does not
fit, :class:`StageOutOfMemory` tells the detector to move the stage to the CPU.

On the CPU a stage can run as several *streams*: worker threads that each take
the next batch and run it with one intra-op thread (torch releases the GIL in
its kernels). On the idle 2-core dev CPU two such streams finish the U-Net and
the 3D classifier 1.1× sooner than one stream with two OpenMP threads, which
synchronise at every operator (1.2× and 1.4× when another job shares the
cores; docs/benchmarks.md). The batches and their
contents are the same either way; only the order in which they run differs.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engine.devices import cpu_threads, is_out_of_memory, release_cached_memory
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
    streams: int = 1,
) -> int:
    """Call ``step(start, stop)`` over ``range(n_items)`` in batches, halving them on out-of-memory.

    Args:
        n_items: Items to process.
        batch_size: Items per call to start with.
        step: Processes items ``[start, stop)``; must not keep partial results of a
            failed call (a batch is redone after an out-of-memory error). With
            ``streams > 1`` it is called from several threads at once, on disjoint
            batches, so it must only write to its own items.
        device: Device the step runs on (its cache is released after an OOM).
        reporter: Progress and cancellation of this stage.
        notes: Receives a line for each batch-size reduction.
        unit: Word for the items in progress texts.
        streams: Worker threads on the CPU, each running whole batches with one
            intra-op thread (see the module docstring); 1 (and any non-CPU device):
            the batches run one after another on the calling thread.

    Returns:
        The batch size that finally worked.

    Raises:
        CancelledError: ``cancelled()`` became true between batches.
        StageOutOfMemory: a single item does not fit in memory.
    """
    size = max(1, int(batch_size))
    reporter.report(0.0, f"0/{n_items} {unit}")
    batches = [(start, min(n_items, start + size)) for start in range(0, n_items, size)]
    if streams > 1 and device.type == "cpu" and len(batches) > 1:
        batches, failure = _run_streams(batches, step, min(int(streams), len(batches)), reporter, n_items, unit)
        if failure is None:
            return size
        if not is_out_of_memory(failure):
            raise failure
        notes.append(f"{reporter.label}: out of memory on {device} with {streams} streams; the rest runs in one stream")
    done = n_items - sum(stop - start for start, stop in batches)
    for start, stop in batches:
        size = _run_sequential(start, stop, size, step, device, reporter, notes, n_items, unit, done)
        done += stop - start
    return size


def _run_sequential(
    first: int,
    last: int,
    size: int,
    step: Callable[[int, int], None],
    device: torch.device,
    reporter: StageReporter,
    notes: list[str],
    n_items: int,
    unit: str,
    done: int,
) -> int:
    """Items ``[first, last)`` in batches of ``size`` on this thread, halving on OOM; the final size."""
    start = first
    while start < last:
        reporter.check()
        stop = min(last, start + size)
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
        done += stop - start
        start = stop
        reporter.report(done / n_items, f"{done}/{n_items} {unit}")
    return size


def _run_streams(
    batches: list[tuple[int, int]],
    step: Callable[[int, int], None],
    streams: int,
    reporter: StageReporter,
    n_items: int,
    unit: str,
) -> tuple[list[tuple[int, int]], BaseException | None]:
    """Run ``batches`` on ``streams`` worker threads with one intra-op thread each.

    Cancellation is polled before each batch (by the worker taking it, one poll at
    a time) and by the calling thread while it waits; the calling thread reports
    progress. On cancellation or an error no new batch starts and the running ones finish.
    The workers run with the caller's grad and inference modes (torch keeps them per thread).

    Returns:
        ``(batches not done, the first error or None)``.

    Raises:
        CancelledError: the caller asked to stop.
    """
    pending = list(reversed(batches))
    finished: set[tuple[int, int]] = set()
    errors: list[BaseException] = []
    lock = threading.Lock()
    changed = threading.Condition(lock)
    stop_now = threading.Event()

    # grad and inference modes are per thread: the workers take the caller's
    inference = torch.is_inference_mode_enabled()
    grad = torch.is_grad_enabled()

    def work() -> None:
        torch.set_num_threads(1)  # this thread's own intra-op count (OpenMP keeps one per thread)
        while True:
            with changed:
                if stop_now.is_set() or not pending:
                    return
                try:
                    reporter.check()  # between batches, as one stream does; one poll at a time
                except BaseException as exc:  # CancelledError: handed to the calling thread
                    errors.append(exc)
                    stop_now.set()
                    changed.notify()
                    return
                batch = pending.pop()
            try:
                with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                    step(*batch)
            except BaseException as exc:  # handed to the calling thread
                with changed:
                    errors.append(exc)
                    stop_now.set()
                    changed.notify()
                return
            with changed:
                finished.add(batch)
                changed.notify()

    cancelled: BaseException | None = None
    with cpu_threads(1):
        workers = [threading.Thread(target=work, name=f"{reporter.label}-stream-{k}", daemon=True) for k in range(streams)]
        for worker in workers:
            worker.start()
        reported = 0
        try:
            with changed:
                while any(worker.is_alive() for worker in workers) and len(finished) < len(batches) and not errors:
                    changed.wait(timeout=0.05)
                    if len(finished) != reported:
                        reported = len(finished)
                        items = sum(stop - start for start, stop in finished)
                        reporter.report(items / n_items, f"{items}/{n_items} {unit}")
                    reporter.check()
        except BaseException as exc:  # CancelledError, or the progress callback failed: stop the workers first
            cancelled = exc
            stop_now.set()
        for worker in workers:
            worker.join()
    if cancelled is not None:
        raise cancelled
    left = [batch for batch in batches if batch not in finished]
    if not errors and not left:
        reporter.report(1.0, f"{n_items}/{n_items} {unit}")
    return left, (errors[0] if errors else None)


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
