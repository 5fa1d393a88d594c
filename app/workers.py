"""Background work for the viewer: loading a series and running Detect, each on a ``QThread``.

A worker is a ``QObject`` moved to its own thread; its ``run`` slot does the
work and reports through signals, which Qt delivers to the GUI thread. The GUI
thread never waits on a worker and never imports torch: the detector is built
(and torch imported) inside the detect worker's thread.

Cancellation is cooperative: :meth:`DetectWorker.cancel` sets a flag that the
engine polls between batches through its ``cancelled()`` callable.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from engine.detection.result import DetectionResult
from engine.detection.settings import GroupingSettings
from engine.errors import CancelledError, EngineError
from engine.io.volume import CtVolume

if TYPE_CHECKING:
    from engine.detection import Detector  # imports torch: for type checking only

#: Builds the detector; called in the worker thread the first time Detect runs.
DetectorFactory = Callable[[], "Detector"]


def default_detector() -> Detector:
    """The engine's bundled detector (demo weights), on the best device available, in the chosen backend
    (:func:`app.model_choice.detect_backend`)."""
    from app.model_choice import detect_backend
    from engine.detection import Detector, DetectorConfig  # imports torch: only ever called off the GUI thread

    return Detector.default(device="auto", config=DetectorConfig(backend=detect_backend()))


class DetectorProvider:
    """Builds the detector once, on first use, and keeps it.

    Args:
        factory: Returns a detector (``detect``/``regroup`` as ``engine.detection.Detector``).
        demo: Whether the detector runs the bundled demo models (results then
            say "demo model trained on synthetic data"); default: True for
            :func:`default_detector`.
    """

    def __init__(self, factory: DetectorFactory = default_detector, demo: bool | None = None) -> None:
        self._factory = factory
        self.demo = (factory is default_detector) if demo is None else bool(demo)
        self._detector: Detector | None = None
        self._lock = threading.Lock()

    def get(self) -> Detector:
        """The detector, building it on the first call (thread-safe)."""
        with self._lock:
            if self._detector is None:
                self._detector = self._factory()
                # a remote detector knows only once connected whether the server runs the demo models
                self.demo = bool(getattr(self._detector, "demo", self.demo))
            return self._detector

    @property
    def device(self) -> str | None:
        """Where the built detector runs its models (None before it is built)."""
        device = getattr(self._detector, "device", None)
        return None if device is None else str(device)

    def reset(self, factory: DetectorFactory | None = None, demo: bool = False) -> None:
        """Forget the built detector (e.g. when the user picks other models in the Models menu)."""
        with self._lock:
            if factory is not None:
                self._factory = factory
                self.demo = demo
            self._detector = None


def _unexpected(exc: BaseException) -> str:
    """Text for an error the engine did not anticipate: its type, message and where it happened."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (in {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


@dataclass(frozen=True)
class LoadRequest:
    """What to open.

    Args:
        path: A CT file or DICOM folder; None for the built-in demo series.
        series_uid: For a DICOM folder, the series to load.
        ask_series: When a folder holds several series and no ``series_uid`` is
            given, report them (``series_found``) instead of loading one.
    """

    path: Path | None = None
    series_uid: str | None = None
    ask_series: bool = True


class LoadWorker(QObject):
    """Loads one CT (or generates the demo series first) off the GUI thread.

    Signals:
        progress(float, str): fraction in [0, 1] (negative: unknown) and a stage text.
        loaded(object, object): the ``CtVolume`` and the path it came from.
        series_found(object, object): the folder and its ``DicomSeriesInfo`` list,
            when the user must choose.
        failed(str): the error message (names the file and the problem).
        finished(): always last.
    """

    progress = Signal(float, str)
    loaded = Signal(object, object)
    series_found = Signal(object, object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, request: LoadRequest) -> None:
        super().__init__()
        self.request = request

    @Slot()
    def run(self) -> None:
        """Do the load; emits exactly one of loaded / series_found / failed, then finished."""
        try:
            self._load()
        except EngineError as exc:
            self.failed.emit(str(exc))
        except MemoryError:
            self.failed.emit(f"{self.request.path}: not enough memory to load this volume")
        except Exception as exc:  # noqa: BLE001 — a worker must report every failure, not die silently
            self.failed.emit(f"{self.request.path or 'demo series'}: {_unexpected(exc)}")
        finally:
            self.finished.emit()

    def _load(self) -> None:
        from engine.io.ct import load_ct
        from engine.io.dicom import list_dicom_series

        path = self.request.path
        if path is None:
            path = self._demo_path()
        path = Path(path)
        if path.is_dir() and self.request.series_uid is None and self.request.ask_series:
            self.progress.emit(-1.0, f"scanning {path.name} for DICOM series")
            series = list_dicom_series(path)
            if len(series) > 1:
                self.series_found.emit(path, series)
                return
        self.progress.emit(-1.0, f"loading {path.name}")
        ct = load_ct(path, self.request.series_uid)
        self.progress.emit(1.0, "loaded")
        self.loaded.emit(ct, path)

    def _demo_path(self) -> Path:
        try:
            from engine.demo import demo_series_path
        except ImportError as exc:
            raise EngineError(
                f"the built-in demo series is not available in this installation ({exc}); "
                "open a CT with File ▸ Open instead"
            ) from None
        self.progress.emit(0.0, "preparing the demo series")
        return Path(demo_series_path(lambda f, text="": self.progress.emit(float(f), str(text))))


class DetectWorker(QObject):
    """Runs ``detect`` (or ``regroup``) for one CT off the GUI thread.

    Args:
        provider: Gives the detector (built here, in the worker thread, on first use).
        ct: The open volume.
        regroup_from: When set, a previous result of ``ct`` to re-group with
            ``grouping`` instead of detecting again.
        grouping: The grouping settings of a re-group (required with ``regroup_from``).

    Signals:
        progress(float, str): fraction done and the current stage.
        done(object): the ``DetectionResult``.
        failed(str): the error message.
        cancelled(): the user cancelled; nothing changed.
        finished(): always last.
    """

    progress = Signal(float, str)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(
        self,
        provider: DetectorProvider,
        ct: CtVolume,
        regroup_from: DetectionResult | None = None,
        grouping: GroupingSettings | None = None,
    ) -> None:
        super().__init__()
        if (regroup_from is None) != (grouping is None):
            raise ValueError("a re-group needs both the previous result and the grouping settings")
        self.provider = provider
        self.ct = ct
        self.regroup_from = regroup_from
        self.grouping = grouping
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop at the engine's next check (safe from any thread)."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called (the engine's ``cancelled()`` callable)."""
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        """Run; emits exactly one of done / failed / cancelled, then finished."""
        try:
            self.progress.emit(0.0, "loading models")
            detector = self.provider.get()
            if self._cancel.is_set():
                raise CancelledError()
            if self.regroup_from is not None and self.grouping is not None:
                self.progress.emit(0.0, f"re-grouping: {self.grouping.describe()}")
                result = detector.regroup(
                    self.regroup_from, self.ct, self.grouping, progress=self._report, cancelled=self.is_cancelled
                )
            else:
                result = detector.detect(self.ct, progress=self._report, cancelled=self.is_cancelled)
            if self._cancel.is_set():
                raise CancelledError()
            self.done.emit(result)
        except CancelledError:
            self.cancelled.emit()
        except EngineError as exc:
            self.failed.emit(str(exc))
        except MemoryError:
            self.failed.emit("not enough memory to run detection on this volume")
        except Exception as exc:  # noqa: BLE001 — report every failure in the dialog; the viewer keeps running
            self.failed.emit(_unexpected(exc))
        finally:
            self.finished.emit()

    def _report(self, fraction: float, stage: str = "") -> None:
        self.progress.emit(float(fraction), str(stage))


class ThreadPool(QObject):
    """Starts workers on their own ``QThread`` and keeps them alive until they finish."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[QThread, QObject] = {}
        self._reapers: dict[QThread, _Reaper] = {}

    def start(self, worker: QObject) -> QThread:
        """Move ``worker`` to a new thread and call its ``run`` there.

        The worker must have a ``finished`` signal; the thread quits and both are
        deleted after it.
        """
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # quit from the worker's own thread: a GUI thread blocked in wait_all() could not deliver a queued quit
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        reaper = _Reaper(self, thread)  # lives in the GUI thread, so the clean-up runs there
        thread.finished.connect(reaper.reap)
        self._running[thread] = worker
        self._reapers[thread] = reaper
        thread.start()
        return thread

    def _forget(self, thread: QThread) -> None:
        self._reapers.pop(thread, None)
        worker = self._running.pop(thread, None)
        if worker is not None:
            worker.deleteLater()
        thread.deleteLater()

    @property
    def busy(self) -> bool:
        """True while any worker runs."""
        return bool(self._running)

    def wait_all(self, timeout_ms: int = 10_000) -> bool:
        """Block until every thread finished (at application exit). Returns True if all did."""
        ok = True
        for thread in list(self._running):
            ok = thread.wait(timeout_ms) and ok
        return ok


class _Reaper(QObject):
    """Receives a thread's ``finished`` in the GUI thread and lets the pool clean up."""

    def __init__(self, pool: ThreadPool, thread: QThread) -> None:
        super().__init__()
        self._pool = pool
        self._thread = thread

    @Slot()
    def reap(self) -> None:
        self._pool._forget(self._thread)
