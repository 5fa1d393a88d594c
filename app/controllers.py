"""Controllers between the window and the workers: opening a series, running Detect.

Each controller lives in the GUI thread, starts one worker at a time on a
``QThread`` (:class:`~app.workers.ThreadPool`), and turns the worker's
signals into state changes and its own signals for the widgets. Widgets never
talk to workers directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from PySide6.QtCore import QObject, Signal, Slot

from app.findings import match_by_position
from app.state import ViewerState
from app.workers import DetectorProvider, DetectWorker, LoadRequest, LoadWorker, ThreadPool
from engine.detection.result import DetectionResult
from engine.detection.settings import GroupingSettings
from engine.io.dicom import DicomSeriesInfo
from engine.io.volume import CtVolume


class LoadController(QObject):
    """Opens CT files, DICOM folders and the demo series in the background.

    A load that fails leaves the state untouched (the previous volume stays).

    Signals:
        started(str): what is being opened.
        progress(float, str): fraction (negative: unknown) and stage text.
        loaded(object, object): the ``CtVolume`` (already set on the state) and its path.
        series_found(object, object): folder and its series list (after
            ``idle``); call :meth:`open` again with the chosen ``series_uid``.
        failed(str): the error message, naming the file and the problem.
        idle(): the load ended (whatever the outcome).
    """

    started = Signal(str)
    progress = Signal(float, str)
    loaded = Signal(object, object)
    series_found = Signal(object, object)
    failed = Signal(str)
    idle = Signal()

    def __init__(self, state: ViewerState, pool: ThreadPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pool = pool
        self._worker: LoadWorker | None = None
        self._choice: tuple[Path, list[DicomSeriesInfo]] | None = None
        #: True while (and after) opening the demo series rather than a user file.
        self.loading_demo = False

    @property
    def busy(self) -> bool:
        """True while a load runs."""
        return self._worker is not None

    def open(self, path: str | Path | None, series_uid: str | None = None) -> bool:
        """Start opening ``path`` (None: the demo series). Returns False when a load already runs."""
        if self._worker is not None:
            return False
        request = LoadRequest(path=None if path is None else Path(path), series_uid=series_uid)
        self.loading_demo = path is None
        worker = LoadWorker(request)
        worker.progress.connect(self._on_progress)
        worker.loaded.connect(self._on_loaded)
        worker.series_found.connect(self._on_series_found)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.started.emit("demo series" if path is None else Path(path).name)
        self.pool.start(worker)
        return True

    @Slot(float, str)
    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.emit(fraction, text)

    @Slot(object, object)
    def _on_loaded(self, ct: CtVolume, path: Path) -> None:
        self.state.set_volume(ct)
        self.loaded.emit(ct, path)

    @Slot(object, object)
    def _on_series_found(self, folder: Path, series: list[DicomSeriesInfo]) -> None:
        self._choice = (folder, series)  # reported once the worker is done, so open() can be called at once

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)

    @Slot()
    def _on_finished(self) -> None:
        self._worker = None
        self.idle.emit()
        if self._choice is not None:
            folder, series = self._choice
            self._choice = None
            self.series_found.emit(folder, series)


class DetectController(QObject):
    """Runs Detect and re-grouping for the open volume, one run at a time.

    A cancelled or failed run leaves the previous result on the state. A result
    that arrives after the user opened another volume is dropped. Reader
    verdicts and notes follow a new result to the lesions at the same
    positions; when some have no lesion there, :attr:`confirm_discard` is asked
    first, and a "no" keeps the previous result (and the whole review).

    Args:
        state: The viewer state (volume in, result out).
        provider: Builds and keeps the detector (in the worker thread).
        pool: Starts the worker threads.

    Signals:
        started(str): ``"detect"`` or ``"regroup"``.
        progress(float, str): fraction and stage.
        done(object): the new result (already set on the state).
        failed(str): the error message.
        cancelled(): the run stopped at the user's request.
        kept(): the new result was not shown, to keep verdicts it could not carry.
        busy_changed(bool): a run started or ended.
    """

    started = Signal(str)
    progress = Signal(float, str)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    kept = Signal()
    busy_changed = Signal(bool)

    def __init__(self, state: ViewerState, provider: DetectorProvider, pool: ThreadPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.provider = provider
        self.pool = pool
        self._worker: DetectWorker | None = None
        self._kind = ""
        self._ct: CtVolume | None = None
        self._t0 = 0.0
        self.last_elapsed = 0.0
        self.last_kind = ""
        #: Asked with a description of each verdict or note a new result cannot carry; True discards them.
        self.confirm_discard: Callable[[Sequence[str]], bool] = lambda _lost: True

    @property
    def busy(self) -> bool:
        """True while a run is in progress."""
        return self._worker is not None

    @property
    def kind(self) -> str:
        """``"detect"`` or ``"regroup"`` while running, else ``""``."""
        return self._kind if self._worker is not None else ""

    def elapsed(self) -> float:
        """Seconds since the current run started (the last run's duration when idle)."""
        return time.perf_counter() - self._t0 if self._worker is not None else self.last_elapsed

    def detect(self) -> bool:
        """Start Detect on the open volume. Returns False with no volume or while a run is in progress."""
        ct = self.state.volume
        if ct is None or self._worker is not None:
            return False
        return self._start(DetectWorker(self.provider, ct), "detect")

    def regroup(self, grouping: GroupingSettings) -> bool:
        """Re-group the current result with other grouping settings (no new segmentation).

        Returns:
            False without a result, while a run is in progress, or when ``grouping``
            is the result's own (nothing would change).
        """
        ct, result = self.state.volume, self.state.result
        if ct is None or result is None or self._worker is not None or grouping == result.grouping:
            return False
        return self._start(DetectWorker(self.provider, ct, regroup_from=result, grouping=grouping), "regroup")

    def cancel(self) -> None:
        """Ask the running worker to stop (it reports ``cancelled`` soon after)."""
        if self._worker is not None:
            self._worker.cancel()

    def _start(self, worker: DetectWorker, kind: str) -> bool:
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        self._worker, self._kind, self._ct = worker, kind, worker.ct
        self.last_kind = kind
        self._t0 = time.perf_counter()
        self.started.emit(kind)
        self.busy_changed.emit(True)
        self.pool.start(worker)
        return True

    @Slot(float, str)
    def _on_progress(self, fraction: float, stage: str) -> None:
        self.progress.emit(fraction, stage)

    @Slot(object)
    def _on_done(self, result: DetectionResult) -> None:
        if self.state.volume is not self._ct:
            return  # the user opened another series meanwhile
        lost = self.unmatched_review(result)
        if lost and not self.confirm_discard(lost):
            self.kept.emit()
            return
        self.state.set_result(result)
        self.done.emit(result)

    def unmatched_review(self, result: DetectionResult) -> list[str]:
        """The current verdicts and notes that ``result`` has no lesion for (at the same position), described."""
        old = self.state.result
        marks, notes = self.state.marks, self.state.notes
        reviewed = sorted(set(marks) | set(notes))
        if old is None or not reviewed:
            return []
        by_id = {int(c.id): c for c in old.candidates}
        reviewed = [k for k in reviewed if k in by_id]
        xyz = np.array([by_id[k].center_xyz for k in reviewed], dtype=np.float64).reshape(-1, 3)
        radius = np.array([0.5 * float(by_id[k].diameter_mm) for k in reviewed], dtype=np.float64)
        matched = match_by_position(xyz, radius, result.candidates)
        lost = []
        for k, j in zip(reviewed, matched):
            if j is None:
                shown = self.state.findings.by_id(k)
                name = f"#{shown.number}" if shown is not None and shown.number else f"candidate {k}"
                x, y, z = by_id[k].center_xyz
                what = ", ".join(w for w in (marks[k].value if k in marks else "", f"note {notes[k]!r}" if k in notes else "") if w)
                lost.append(f"{name} at LPS {x:.1f}, {y:.1f}, {z:.1f} mm ({what})")
        return lost

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self.cancelled.emit()

    @Slot()
    def _on_finished(self) -> None:
        self.last_elapsed = time.perf_counter() - self._t0
        self._worker, self._ct = None, None
        self.busy_changed.emit(False)
