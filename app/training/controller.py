"""The Training panel's logic: start, follow, stop and re-open runs; no widgets.

One child process at a time (:class:`~app.training.process.TrainingProcess`)
feeds the *live* run's :class:`~app.training.record.RunRecord`; any run folder
can be opened for viewing, and a run that is still being written by another
process (started by an earlier session of the app, or from a terminal) is
followed by reading its ``metrics.jsonl`` once a second. The panel shows
whichever record is *viewed*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from app.training.process import TrainingProcess
from app.training.request import TrainRequest
from app.training.record import RunRecord, RunStatus
from app.training.run_folders import MetricsReader, describe_event, read_run, settle_status
from engine.errors import TrainingRunError
from engine.run_layout import STOP_FILE_NAME, RunLayout

#: How often a run started elsewhere is re-read, ms.
TAIL_INTERVAL_MS = 1000
#: Log lines kept per run.
MAX_LOG_LINES = 5000
#: Added to a failure message that looks like running out of memory.
OOM_HINT = "Out of memory: try a smaller batch size, or another device."


class TrainingController(QObject):
    """Starts the training CLI, folds its output into records and keeps the viewed one up to date.

    Args:
        process: The child-process runner (tests give one pointed at a fake trainer).
        parent: Qt parent.

    Signals:
        run_changed(str): the viewed record changed; the argument names what
            (an event name, ``"status"``, ``"log"`` or ``"viewed"`` for a new record).
        logged(str): a line added to the viewed record's log.
        busy_changed(bool): a child process started or ended.
        run_ended(object): a run's record, when it ended (live child or followed run).
    """

    run_changed = Signal(str)
    logged = Signal(str)
    busy_changed = Signal(bool)
    run_ended = Signal(object)

    def __init__(self, process: TrainingProcess | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process = process or TrainingProcess(parent=self)
        self.process.setParent(self)
        self.process.event_received.connect(self._on_child_event)
        self.process.logged.connect(self._on_child_log)
        self.process.ended.connect(self._on_child_ended)
        self.live: RunRecord | None = None
        self.viewed: RunRecord | None = None
        self._reader: MetricsReader | None = None
        self._tail = QTimer(self)
        self._tail.setInterval(TAIL_INTERVAL_MS)
        self._tail.timeout.connect(self._follow)

    # --- the live child ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a child process runs."""
        return self.process.running

    def start(self, request: TrainRequest) -> RunRecord:
        """Check ``request`` and start its run; it becomes the viewed run.

        Raises:
            TrainingRunError: another run is going, or the request is refused
                (:meth:`TrainRequest.check`).
        """
        if self.busy:
            raise TrainingRunError("a training run is already going; stop it first or wait for it to end")
        request.check()
        try:
            request.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingRunError(f"cannot create the run folder ({exc.strerror or exc})", request.run_dir) from None
        record = RunRecord(name=request.run_name, run_dir=request.run_dir, kind=request.kind, status=RunStatus.STARTING)
        record.epochs = request.epochs
        self.live = record
        self._view(record, None)
        command = [Path(self.process.program).name, *self.process.prefix_args, *request.arguments()]
        self._note(record, f"▸ starting: {' '.join(command)}")
        self.process.start(request.arguments(), request.run_dir)
        self.busy_changed.emit(True)
        return record

    def stop(self) -> None:
        """Ask the viewed run to stop: the live child through the process runner, a followed run by its STOP file."""
        record = self.viewed
        if record is None or record.status.ended:
            return
        if record is self.live and self.busy:
            self.process.stop()
        elif record.run_dir is not None:
            layout = RunLayout(record.run_dir)
            try:
                layout.request_stop()
            except OSError as exc:
                self._note(record, f"▸ cannot write {layout.stop_file}: {exc}")
                return
            self._note(record, f"▸ stop requested ({STOP_FILE_NAME} file written); the run stops after its current batch")
        else:
            return
        record.status = RunStatus.STOPPING
        self.run_changed.emit("status")

    def shutdown(self, grace_ms: int = 20_000) -> None:
        """Stop the child and wait for it (the window closes); its checkpoints stay valid."""
        self._tail.stop()
        self.process.stop_and_wait(grace_ms)

    @Slot(dict)
    def _on_child_event(self, event: dict[str, Any]) -> None:
        record = self.live
        if record is None:
            return
        try:
            name = record.apply(event)
        except ValueError as exc:
            self._note(record, f"▸ ignored a {exc}")
            return
        line = describe_event(event, with_epochs=False)
        if line:
            self._note(record, line)
        if name and record is self.viewed:
            self.run_changed.emit(name)

    @Slot(str, str)
    def _on_child_log(self, text: str, source: str) -> None:
        if self.live is not None:
            self._note(self.live, f"[stdout] {text}" if source == "stdout" else text)

    @Slot(int, str)
    def _on_child_ended(self, code: int, how: str) -> None:
        record = self.live
        self.busy_changed.emit(False)
        if record is None:
            return
        if not record.status.ended:
            self._settle_child(record, code, how)
        elif record.status is RunStatus.FAILED and _looks_like_oom(record.message) and OOM_HINT not in record.message:
            record.message = f"{record.message} — {OOM_HINT}"
        self._note(record, f"▸ process {how} (exit status {code})")
        if record is self.viewed:
            self.run_changed.emit("status")
        self.run_ended.emit(record)

    def _settle_child(self, record: RunRecord, code: int, how: str) -> None:
        """The outcome of a child that ended without a ``finished``/``error`` event."""
        if how in ("terminated", "killed") and self.process.stop_requested:
            record.status = RunStatus.STOPPED
            record.message = f"{how} after not stopping in time; the last complete checkpoint is kept"
            return
        if how == "exited" and code == 0:
            record.status = RunStatus.COMPLETED
            record.message = "the process exited without a final event"
            return
        record.status = RunStatus.FAILED
        detail = _last_error_line(record.log)
        if how == "failed to start":
            what = "the training program could not be started"
        elif how == "crashed":
            what = "the training process crashed"
        else:
            what = f"the training process exited with status {code}"
        record.message = f"{what}: {detail}" if detail else what
        if _looks_like_oom(record.message):
            record.message += f" — {OOM_HINT}"

    # --- viewing runs on disk ----------------------------------------------------------------
    def open_run(self, run_dir: Path) -> RunRecord:
        """View the run in ``run_dir``; follow it while it is still being written."""
        run_dir = Path(run_dir)
        if self.live is not None and self.live.run_dir is not None and _same(self.live.run_dir, run_dir):
            self._view(self.live, None)
            return self.live
        lines: list[str] = []
        record, reader = read_run(run_dir, lines)
        if reader.skipped:
            lines.append(f"▸ {reader.skipped} line(s) of metrics.jsonl were not events and were skipped")
        record.log = lines[-MAX_LOG_LINES:]
        self._view(record, reader)
        return record

    def _view(self, record: RunRecord, reader: MetricsReader | None) -> None:
        self._tail.stop()
        self.viewed = record
        self._reader = reader
        if reader is not None and not record.status.ended and record.status is not RunStatus.EMPTY:
            self._tail.start()
        self.run_changed.emit("viewed")

    @Slot()
    def _follow(self) -> None:
        record, reader = self.viewed, self._reader
        if record is None or reader is None:
            self._tail.stop()
            return
        for event in reader.read_new():
            try:
                name = record.apply(event)
            except ValueError as exc:
                self._note(record, f"▸ ignored a {exc}")
                continue
            line = describe_event(event)
            if line:
                self._note(record, line)
            if name:
                self.run_changed.emit(name)
        settle_status(record, reader)
        if record.status.ended:
            self._tail.stop()
            self.run_changed.emit("status")
            self.run_ended.emit(record)

    # --- logs -----------------------------------------------------------------------------------
    def log_lines(self, record: RunRecord | None = None) -> list[str]:
        """The log of ``record`` (default: the viewed one)."""
        record = record or self.viewed
        return list(record.log) if record is not None else []

    def _note(self, record: RunRecord, line: str) -> None:
        record.log.append(line)
        del record.log[:-MAX_LOG_LINES]
        if record is self.viewed:
            self.logged.emit(line)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _last_error_line(lines: list[str]) -> str:
    """The most telling line of a failed child's output: an ``error:`` line, else the traceback's last line."""
    text = [line.strip() for line in lines if line.strip() and not line.startswith("▸")]
    for line in reversed(text):
        if line.lower().startswith("error:"):
            return line[6:].strip()
    for line in reversed(text):
        if "Error" in line or "Exception" in line:
            return line
    return text[-1] if text else ""


def _looks_like_oom(message: str) -> bool:
    text = message.lower()
    return "out of memory" in text or "outofmemory" in text
