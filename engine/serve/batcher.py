"""Dynamic batching of classify requests: a bounded queue and one model worker thread.

Requests (each one or more crops) wait in a bounded queue. The worker takes
the first, then keeps collecting until the batch holds ``max_batch`` crops or
``max_wait_ms`` have passed since that first request, runs the model once on
the concatenation and hands each request its rows. A request that would
overflow the batch waits for the next one; one larger than ``max_batch`` runs
alone in chunks. A full queue is refused at once (:class:`QueueFull`; the
server answers 503 with ``Retry-After``), never blocks the event loop.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.serve.metrics import ServerMetrics

#: ``predict(crops (N, 32, 48, 48) float32 HU) -> (p_nodule (N,), p_malignant (N,))``.
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class QueueFull(Exception):
    """The classify queue is full; try again shortly."""


@dataclass
class _Request:
    crops: np.ndarray
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Batches crops from concurrent requests for one model worker.

    Args:
        predict: The model call (runs only on the worker thread).
        max_batch: Most crops per model call.
        max_wait_ms: Longest a request waits for others to join its batch.
        max_queue: Most requests waiting; more are refused with :class:`QueueFull`.
        metrics: Receives batch sizes and queue depth.
    """

    def __init__(
        self, predict: Predict, max_batch: int = 32, max_wait_ms: float = 10.0, max_queue: int = 256,
        metrics: ServerMetrics | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_ms not negative")
        self.predict = predict
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.metrics = metrics
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=int(max_queue))
        self._carry: _Request | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="classify-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests already queued, then stop the worker."""
        if self._thread is None:
            return
        self._queue.put(None)  # blocks only while the queue is full, i.e. until the worker frees a slot
        self._thread.join(timeout)
        self._thread = None

    def submit(self, crops: np.ndarray) -> Future:
        """Queue crops ``(N, 32, 48, 48)`` float32; the future gives ``(p_nodule, p_malignant)``.

        Raises:
            QueueFull: the queue holds ``max_queue`` requests already.
        """
        request = _Request(crops)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFull from None
        self._gauge()
        return request.future

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._queue.qsize())

    def _next(self, timeout: float | None) -> _Request | None:
        if self._carry is not None:
            request, self._carry = self._carry, None
            return request
        request = self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        self._gauge()
        return request

    def _run(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            batch, count = [first], len(first.crops)
            deadline = time.monotonic() + self.max_wait
            stopping = False
            while count < self.max_batch:
                try:
                    request = self._next(deadline - time.monotonic())
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                    break
                if count + len(request.crops) > self.max_batch:
                    self._carry = request
                    break
                batch.append(request)
                count += len(request.crops)
            self._execute(batch)
            if stopping:
                if self._carry is not None:
                    self._execute([self._carry])
                    self._carry = None
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self._execute([request])

    def _execute(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        crops = np.concatenate([r.crops for r in live]) if len(live) > 1 else live[0].crops
        try:
            p_nodule = np.empty(len(crops), dtype=np.float64)
            p_malignant = np.empty(len(crops), dtype=np.float64)
            for start in range(0, len(crops), self.max_batch):
                stop = start + self.max_batch
                p_nodule[start:stop], p_malignant[start:stop] = self.predict(crops[start:stop])
                if self.metrics is not None:
                    self.metrics.batch_size.observe(min(stop, len(crops)) - start)
        except BaseException as exc:  # the requests get the error; the worker keeps serving
            for request in live:
                request.future.set_exception(exc)
            return
        if self.metrics is not None:
            self.metrics.crops.inc(len(crops))
        offset = 0
        for request in live:
            n = len(request.crops)
            request.future.set_result((p_nodule[offset : offset + n], p_malignant[offset : offset + n]))
            offset += n
