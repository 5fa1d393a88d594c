"""Graceful stop requests: a ``STOP`` file in the run folder, or Ctrl-C (SIGINT).

The training loop asks :meth:`StopRequest.requested` after every batch; when it
says yes the loop finishes that batch, writes valid checkpoints and exits with
status 0 and a ``finished`` event whose ``status`` is ``"stopped"``. A second
Ctrl-C interrupts at once (``KeyboardInterrupt``).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

from engine.run_layout import RunLayout



class StopRequest:
    """Watches for a stop file and SIGINT.

    Args:
        run_dir: The run folder; ``run_dir / STOP`` requests a stop.
        check_interval: Minimum seconds between two looks at the file system.
    """

    def __init__(self, run_dir: Path, check_interval: float = 0.5) -> None:
        self.stop_file = RunLayout(Path(run_dir)).stop_file
        self.check_interval = check_interval
        self._flag = False
        self._reason = ""
        self._last_check = 0.0
        self._previous_handler = None

    def clear_stale_file(self) -> None:
        """Remove a stop file left by an earlier, already stopped, run."""
        self.stop_file.unlink(missing_ok=True)

    def install_signal_handler(self) -> None:
        """Turn the first SIGINT into a stop request (main thread only; no-op elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def restore_signal_handler(self) -> None:
        """Put back the SIGINT handler that was there before."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._flag:
            raise KeyboardInterrupt
        self.request("interrupted (SIGINT)")

    def request(self, reason: str) -> None:
        """Ask the run to stop after the current batch."""
        self._flag = True
        self._reason = self._reason or reason

    @property
    def reason(self) -> str:
        """Why the stop was requested (empty when it was not)."""
        return self._reason

    def requested(self) -> bool:
        """Whether a stop was requested (looks at the stop file at most every ``check_interval`` s)."""
        if self._flag:
            return True
        now = time.monotonic()
        if now - self._last_check >= self.check_interval:
            self._last_check = now
            if self.stop_file.exists():
                self.request(f"stop file {self.stop_file} found")
        return self._flag
