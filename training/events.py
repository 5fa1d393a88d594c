"""The training run's event stream: JSON lines on stdout and in ``metrics.jsonl``.

One JSON object per line and per event, each with ``event``, ``run``,
``time`` (Unix seconds) and, where it applies, ``epoch``. The GUI's training
panel reads stdout of the child process; ``metrics.jsonl`` lets it re-attach
to a run later. Human-readable lines go to stderr so stdout stays
machine-readable. The protocol is documented in ``docs/training-protocol.md``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

#: Version of the event protocol, written in ``run_started``.
PROTOCOL_VERSION = 1

#: Every event name the trainers emit.
EVENTS = ("run_started", "progress", "epoch", "checkpoint", "finished", "error")


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (JSON has no NaN) and paths by strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


def encode_event(event: str, run: str, fields: dict[str, Any]) -> str:
    """One event as a JSON line (without the newline).

    Raises:
        ValueError: the event name is not one of :data:`EVENTS`.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown training event {event!r}")
    record = {"event": event, "run": run, "time": round(time.time(), 3), **fields}
    return json.dumps(_json_safe(record), allow_nan=False, separators=(",", ":"))


class EventLog:
    """Writes events to stdout and appends them to ``metrics.jsonl``.

    In a distributed run only rank 0 has an enabled log; the others' calls do
    nothing.

    Args:
        run: The run name put in every event.
        jsonl_path: ``run_dir/metrics.jsonl`` (appended to, flushed per line),
            or ``None`` for stdout only.
        enabled: False on ranks other than 0.
        stdout: Stream for JSON lines (``None``: no JSON on a stream).
        stderr: Stream for human-readable lines (``None``: ``sys.stderr`` at the time of writing).
        progress_interval: Minimum seconds between two ``progress`` events.
    """

    def __init__(
        self,
        run: str,
        jsonl_path: Path | None,
        enabled: bool = True,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        progress_interval: float = 1.0,
    ) -> None:
        self.run = run
        self.jsonl_path = jsonl_path
        self.enabled = enabled
        self.stdout = stdout
        self.stderr = stderr
        self.progress_interval = progress_interval
        self._last_progress = -math.inf
        self._file: TextIO | None = None
        if enabled and jsonl_path is not None:
            jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = jsonl_path.open("a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event (see :data:`EVENTS`) with its fields."""
        if not self.enabled:
            return
        line = encode_event(event, self.run, fields)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        if self.stdout is not None:
            self.stdout.write(line + "\n")
            self.stdout.flush()

    def progress(self, *, force: bool = False, **fields: Any) -> None:
        """Emit a ``progress`` event unless one went out less than ``progress_interval`` ago."""
        now = time.monotonic()
        if force or now - self._last_progress >= self.progress_interval:
            self._last_progress = now
            self.emit("progress", **fields)

    def say(self, text: str) -> None:
        """One human-readable line on stderr."""
        if self.enabled:
            stream = self.stderr if self.stderr is not None else sys.stderr
            stream.write(text + "\n")
            stream.flush()

    def close(self) -> None:
        """Close ``metrics.jsonl``."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` back (complete lines only; a torn last line is skipped)."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written while we read
    return events


def format_metrics_line(kind: str, epoch: int, phase: str, metrics: dict[str, float]) -> str:
    """The human-readable summary of one epoch's metrics."""
    head = f"E{epoch:<3d} {phase:5s} loss {metrics.get('loss', 0.0):.4f}"
    if kind == "segmentation":
        return (
            f"{head}  tp {metrics['tp_pct']:5.1f}%  fn {metrics['fn_pct']:5.1f}%  fp {metrics['fp_pct']:7.1f}%"
            f"  precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  dice {metrics['dice']:.4f}"
        )
    text = (
        f"{head}  correct {metrics['correct_all']:5.1f}%"
        f"  neg {metrics['correct_neg']:5.1f}% ({metrics['correct_neg_count']:.0f} of {metrics['n_neg']:.0f})"
        f"  pos {metrics['correct_pos']:5.1f}% ({metrics['correct_pos_count']:.0f} of {metrics['n_pos']:.0f})"
        f"  precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}"
    )
    if "auc" in metrics:
        text += f"  auc {metrics['auc']:.4f}"
    return text
