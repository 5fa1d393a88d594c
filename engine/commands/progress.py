"""A small text progress bar for the command line (stderr, one line, throttled)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Draw ``[#####.....]  42%  stage`` on one terminal line.

    Use as the engine's ``progress(fraction, text)`` callable. Redraws at most
    every ``interval`` seconds; when the stream is not a terminal, prints a
    plain line only when the stage text changes.

    Args:
        label: Shown before the bar.
        stream: Where to draw (stderr by default).
        width: Bar width in characters.
        interval: Minimum seconds between redraws.
    """

    def __init__(self, label: str = "", stream: TextIO | None = None, width: int = 30, interval: float = 0.1) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self._last_draw = 0.0
        self._last_text = None
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.perf_counter()

    def __call__(self, fraction: float, text: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw < self.interval and fraction < 1.0:
                return
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "." * (self.width - filled)
            elapsed = now - self._start
            self.stream.write(f"\r{self.label}[{bar}] {fraction * 100:5.1f}%  {elapsed:6.1f}s  {text[:40]:<40}")
            self.stream.flush()
        elif text != self._last_text:
            self.stream.write(f"{self.label}{fraction * 100:5.1f}%  {text}\n")
            self.stream.flush()
        self._last_draw = now
        self._last_text = text

    def close(self) -> None:
        """End the bar's line."""
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
