"""The training CLI as a child process (``QProcess``): its output as events and log lines, and stopping it.

The child is ``python -m training ...`` started in the run's own folder. Its
stdout carries one JSON event per line; it arrives in chunks that may end in
the middle of a line, so complete lines are cut out with
:class:`~app.training.lines.LineBuffer` and anything that is not an event is
shown as log text. stderr (epoch summaries, warnings, tracebacks) is kept
apart and goes to the log. Stop first creates the ``STOP`` file the trainer
watches (it then writes its checkpoints and exits 0); a child still running
after ``stop_timeout_ms`` is terminated, and killed ``kill_timeout_ms`` later.
Nothing here runs in a thread: a crash of the child never touches the viewer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from app.training.lines import LineBuffer, parse_event
from engine.paths import REPO_ROOT
from engine.run_layout import STOP_FILE_NAME, RunLayout

#: How long a graceful stop may take before the child is terminated, ms.
STOP_TIMEOUT_MS = 30_000
#: How long after terminate() before kill(), ms.
KILL_TIMEOUT_MS = 5_000


def training_command() -> tuple[str, list[str]]:
    """The program and leading arguments that run the training CLI: this Python, ``-m training``."""
    return sys.executable, ["-m", "training"]


class TrainingProcess(QObject):
    """One child process at a time running the training CLI.

    Args:
        program: The executable (default: this Python).
        prefix_args: Arguments before the run's own (default ``["-m", "training"]``);
            tests point these at a fake trainer script.
        stop_timeout_ms: Graceful-stop grace period before terminate().
        kill_timeout_ms: Time after terminate() before kill().
        parent: Qt parent.

    Signals:
        event_received(dict): one protocol event from stdout.
        logged(str, str): a line of text and where it came from (``"stdout"``,
            ``"stderr"`` or ``"panel"`` for the panel's own notes).
        ended(int, str): the exit status and how the child ended: ``"exited"``,
            ``"crashed"``, ``"terminated"``, ``"killed"`` or ``"failed to start"``.
    """

    event_received = Signal(dict)
    logged = Signal(str, str)
    ended = Signal(int, str)

    def __init__(
        self,
        program: str | None = None,
        prefix_args: Sequence[str] | None = None,
        stop_timeout_ms: int = STOP_TIMEOUT_MS,
        kill_timeout_ms: int = KILL_TIMEOUT_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        default_program, default_prefix = training_command()
        self.program = program or default_program
        self.prefix_args = list(default_prefix if prefix_args is None else prefix_args)
        self.stop_timeout_ms = stop_timeout_ms
        self.kill_timeout_ms = kill_timeout_ms
        self.run_dir: Path | None = None
        self._process: QProcess | None = None
        self._stdout = LineBuffer()
        self._stderr = LineBuffer()
        self._escalation = ""  # "", "stop requested", "terminated", "killed"
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._escalate)

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the child has ended."""
        return self._process is not None

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`stop` was called for the current child."""
        return bool(self._escalation)

    def start(self, args: Sequence[str], run_dir: Path) -> None:
        """Start the child with ``args`` in ``run_dir`` (created if missing).

        Raises:
            RuntimeError: a child is already running (the panel allows one at a time).
        """
        if self._process is not None:
            raise RuntimeError("a training process is already running")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stdout, self._stderr, self._escalation = LineBuffer(), LineBuffer(), ""
        process = QProcess(self)
        process.setProgram(self.program)
        process.setArguments([*self.prefix_args, *args])
        process.setWorkingDirectory(str(self.run_dir))
        process.setProcessEnvironment(self._environment())
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start()

    @staticmethod
    def _environment() -> QProcessEnvironment:
        """This process's environment, with the project importable from the run folder and UTF-8 output."""
        env = QProcessEnvironment.systemEnvironment()
        paths = [str(REPO_ROOT)] + [p for p in env.value("PYTHONPATH", "").split(os.pathsep) if p]
        env.insert("PYTHONPATH", os.pathsep.join(paths))
        env.insert("PYTHONIOENCODING", "utf-8")
        env.insert("PYTHONUNBUFFERED", "1")
        return env

    def stop(self) -> None:
        """Ask the child to stop (``STOP`` file); terminate, then kill it if it does not."""
        if self._process is None or self._escalation:
            return
        self._escalation = "stop requested"
        assert self.run_dir is not None
        try:
            RunLayout(self.run_dir).request_stop()
            self.logged.emit(f"stop requested ({STOP_FILE_NAME} file); waiting for the current batch and the checkpoints", "panel")
        except OSError as exc:
            self.logged.emit(f"cannot write the {STOP_FILE_NAME} file ({exc}); terminating instead", "panel")
            self._timer.start(0)
            return
        self._timer.start(self.stop_timeout_ms)

    def stop_and_wait(self, grace_ms: int = 20_000, kill_ms: int = 5_000) -> None:
        """Stop the child and block until it has ended (the window is closing).

        The ``STOP`` file first; after ``grace_ms`` terminate, after ``kill_ms`` more kill.
        """
        process = self._process
        if process is None:
            return
        self.stop()
        self._timer.stop()  # the escalation happens here, synchronously
        if process.waitForFinished(grace_ms):
            return
        self._escalation = "terminated"
        process.terminate()
        if not process.waitForFinished(kill_ms):
            self._escalation = "killed"
            process.kill()
            process.waitForFinished(kill_ms)

    @Slot()
    def _escalate(self) -> None:
        process = self._process
        if process is None:
            return
        if self._escalation == "stop requested":
            self._escalation = "terminated"
            self.logged.emit(f"the run did not stop within {self.stop_timeout_ms / 1000:g} s; terminating it", "panel")
            process.terminate()
            self._timer.start(self.kill_timeout_ms)
        elif self._escalation == "terminated":
            self._escalation = "killed"
            self.logged.emit("the run ignored terminate; killing it", "panel")
            process.kill()

    @Slot()
    def _read_stdout(self) -> None:
        if self._process is not None:
            self._dispatch_stdout(self._stdout.feed(bytes(self._process.readAllStandardOutput().data())))

    @Slot()
    def _read_stderr(self) -> None:
        if self._process is not None:
            for line in self._stderr.feed(bytes(self._process.readAllStandardError().data())):
                self.logged.emit(line, "stderr")

    def _dispatch_stdout(self, lines: list[str]) -> None:
        for line in lines:
            event = parse_event(line)
            if event is not None:
                self.event_received.emit(event)
            elif line.strip():
                self.logged.emit(line, "stdout")

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        self._read_stderr()
        self._dispatch_stdout(self._stdout.flush())  # a last line without its newline
        for line in self._stderr.flush():
            self.logged.emit(line, "stderr")
        if status == QProcess.ExitStatus.CrashExit:
            how = self._escalation if self._escalation in ("terminated", "killed") else "crashed"
        else:
            how = "exited"
        self._finish(code, how)

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self.logged.emit(f"cannot start {self.program}: {self._process.errorString()}", "panel")
            self._finish(-1, "failed to start")

    def _finish(self, code: int, how: str) -> None:
        self._timer.stop()
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.ended.emit(int(code), how)
