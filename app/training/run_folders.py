"""Training runs on disk: reading and tailing ``metrics.jsonl``, listing the runs folder, log lines.

A run folder holds ``config.json`` and ``metrics.jsonl`` (one event per
line, appended while the run goes; docs/training-protocol.md). Reading it
back rebuilds the same :class:`~app.training.record.RunRecord` the live view
builds from the child's stdout, so a restarted app re-attaches to a run. A
run whose last event is neither ``finished`` nor ``error`` is still going
while its file keeps growing; when it has been silent for
:data:`STALE_AFTER_S` it is shown as interrupted. Qt-free.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.training.lines import LineBuffer, parse_event
from app.training.record import RunRecord, RunStatus, format_duration
from engine.run_layout import RunLayout

#: A run without a final event that wrote nothing for this long is taken as interrupted, seconds.
STALE_AFTER_S = 180.0
#: Bytes read from ``metrics.jsonl`` per call (a long run's file is read in pieces).
READ_CHUNK = 1 << 20


class MetricsReader:
    """Reads the events appended to a ``metrics.jsonl`` since the last call (complete lines only).

    Args:
        path: The file (it may not exist yet).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._lines = LineBuffer()
        self.skipped = 0

    def read_new(self) -> list[dict[str, Any]]:
        """Events in the lines completed since the last call; lines that are not events are counted in ``skipped``."""
        events: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as stream:
                if stream.seek(0, 2) < self.offset:  # the file was replaced: start over
                    self.offset, self._lines = 0, LineBuffer()
                stream.seek(self.offset)
                while chunk := stream.read(READ_CHUNK):
                    self.offset += len(chunk)
                    for line in self._lines.feed(chunk):
                        event = parse_event(line)
                        if event is not None:
                            events.append(event)
                        elif line.strip():
                            self.skipped += 1
        except FileNotFoundError:
            return []
        return events

    def age_s(self) -> float | None:
        """Seconds since the file last changed, or None when it does not exist."""
        try:
            return max(0.0, time.time() - self.path.stat().st_mtime)
        except FileNotFoundError:
            return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The ``config`` section of a run's ``config.json`` (empty when missing or unreadable)."""
    try:
        value = json.loads(RunLayout(run_dir).config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    config = value.get("config") if isinstance(value, dict) else None
    return config if isinstance(config, dict) else {}


def read_run(run_dir: Path, log: list[str] | None = None) -> tuple[RunRecord, MetricsReader]:
    """Rebuild a run's record from its folder.

    Args:
        run_dir: The run folder.
        log: When given, a line per event worth one (:func:`describe_event`) is appended.

    Returns:
        The record, and the reader positioned after the last complete line
        (keep calling :meth:`MetricsReader.read_new` to follow a running run).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    record = RunRecord(name=str(config.get("run_name") or run_dir.name), run_dir=run_dir, kind=str(config.get("kind") or ""))
    record.epochs = int(config.get("epochs") or 0)
    reader = MetricsReader(RunLayout(run_dir).metrics)
    for event in reader.read_new():
        try:
            record.apply(event)
        except ValueError:
            reader.skipped += 1
            continue
        line = describe_event(event) if log is not None else None
        if line:
            log.append(line)
    settle_status(record, reader)
    return record, reader


def settle_status(record: RunRecord, reader: MetricsReader) -> None:
    """Mark a run that stopped writing without a final event as interrupted."""
    if record.status.ended or record.status is RunStatus.EMPTY:
        return
    age = reader.age_s()
    if age is None or age > STALE_AFTER_S:
        record.status = RunStatus.INTERRUPTED
        record.message = f"no event for {format_duration(age)}: the training process is no longer running"
        record.progress = None


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list.

    Args:
        name: Run name.
        run_dir: Its folder.
        kind: ``segmentation``, ``classifier`` or ``malignancy`` (``""`` when unknown).
        status: Where it stands.
        epoch: Completed epochs.
        epochs: Planned epochs.
        best_metric: The metric that picks ``best.pt``.
        best_score: Its best value, or None.
        checkpoint: What "Use for Detect" would take, or None.
        updated: Last change of the folder's event file (Unix seconds).
    """

    name: str
    run_dir: Path
    kind: str
    status: RunStatus
    epoch: int
    epochs: int
    best_metric: str
    best_score: float | None
    checkpoint: Path | None
    updated: float


def list_runs(root: Path) -> list[RunSummary]:
    """Every run folder under ``root`` (those with ``config.json`` or ``metrics.jsonl``), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        if not folder.is_dir() or not RunLayout(folder).looks_like_run:
            continue
        record, reader = read_run(folder)
        stamp = next((p.stat().st_mtime for p in (reader.path, RunLayout(folder).config) if p.is_file()), 0.0)
        runs.append(
            RunSummary(
                name=record.name,
                run_dir=folder,
                kind=record.kind,
                status=record.status,
                epoch=record.completed_epochs,
                epochs=record.epochs,
                best_metric=record.best_metric,
                best_score=record.best_score,
                checkpoint=record.detect_checkpoint() if record.status.usable else None,
                updated=stamp,
            )
        )
    return sorted(runs, key=lambda r: r.updated, reverse=True)


def describe_event(event: dict[str, Any], with_epochs: bool = True) -> str | None:
    """A log line for an event, or None for events not worth a line (``progress``).

    Args:
        event: The event.
        with_epochs: Also describe ``epoch`` events (a live child already
            prints its own summaries on stderr).
    """
    name = event.get("event")
    try:
        if name == "run_started":
            how = "resumed" if event.get("resumed") else "started"
            return (
                f"▸ {how}: {event['kind']} on {event.get('device')} ({event.get('precision')}), "
                f"{event.get('train_series')} training / {event.get('val_series')} validation series, "
                f"epochs {event.get('start_epoch')}–{event.get('epochs')}"
            )
        if name == "epoch" and with_epochs:
            metrics = event["metrics"]
            values = "  ".join(f"{m} {float(metrics[m]):.4f}" for m in ("loss", "precision", "recall", "f1", "dice", "auc")
                               if isinstance(metrics.get(m), (int, float)))
            partial = " (partial)" if event.get("partial") else ""
            return f"E{event['epoch']} {event['phase']}{partial}  {values}"
        if name == "checkpoint":
            score = f", {event['metric']} {float(event['score']):.4f}" if event.get("score") is not None else ""
            return f"▸ saved {event['which']}.pt (epoch {event['epoch']}{score})"
        if name == "finished":
            best = (f"; best {event.get('best_metric')} {float(event['best_score']):.4f} at epoch {event.get('best_epoch')}"
                    if event.get("best_score") is not None else "")
            reason = f" ({event['reason']})" if event.get("reason") else ""
            return f"▸ {event['status']}{reason} after {event.get('epoch')} epoch(s){best}, {format_duration(event.get('duration_s'))}"
        if name == "error":
            return f"▸ error ({event.get('error_type') or 'failure'}): {event.get('message')}"
    except (KeyError, TypeError, ValueError):
        return f"▸ malformed {name} event"
    return None


def last_event(path: Path, tail_bytes: int = 65536) -> dict[str, Any] | None:
    """The last complete event of a ``metrics.jsonl`` (reads only its end), or None."""
    try:
        with Path(path).open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - tail_bytes))
            data = stream.read()
    except OSError:
        return None
    lines = LineBuffer().feed(data)  # the unfinished last line stays pending, i.e. is skipped
    for line in reversed(lines):
        event = parse_event(line)
        if event is not None:
            return event
    return None


def finished_checkpoints(root: Path, kind: str) -> list[tuple[str, Path]]:
    """``(run name, checkpoint)`` of the finished runs of ``kind`` under ``root``, newest first.

    The checkpoint is ``best.pt``, else ``last.pt``. Cheap enough for a menu:
    reads each run's ``config.json`` and only the end of its ``metrics.jsonl``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        layout = RunLayout(folder)
        metrics = layout.metrics
        if not metrics.is_file() or read_config(folder).get("kind") != kind:
            continue
        event = last_event(metrics)
        if event is None or event.get("event") != "finished":
            continue
        checkpoint = layout.detect_checkpoint()
        if checkpoint is not None:
            found.append((metrics.stat().st_mtime, folder.name, checkpoint))
    return [(name, path) for _, name, path in sorted(found, key=lambda item: item[0], reverse=True)]
