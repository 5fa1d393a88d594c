"""One training run as the panel sees it: the protocol's events folded into curves, progress and status.

:class:`RunRecord` takes the events of docs/training-protocol.md one at a
time (from the child's stdout, or read back from ``metrics.jsonl``) and keeps
what the panel draws: per-epoch metric curves for training and validation,
the latest progress with an ETA, the checkpoints, and the run's status.
Qt-free; the widgets in ``app.training.view`` read it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.run_layout import RunLayout

#: Metrics drawn as curves, in this order (segmentation has no AUC, the classifiers no Dice).
CURVE_METRICS = ("loss", "precision", "recall", "f1", "dice", "auc")
#: The two phases of an epoch.
PHASES = ("train", "val")
#: Share of an epoch's progress given to training when the epoch also validates.
TRAIN_SHARE = 0.75


class RunStatus(enum.Enum):
    """Where a run stands."""

    STARTING = "starting"
    PREPARING = "preparing data"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    EMPTY = "no events"

    @property
    def ended(self) -> bool:
        """True once nothing more will happen to the run."""
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED)

    @property
    def usable(self) -> bool:
        """True when the run's checkpoints may go to Detect (it ended without failing; checkpoints are atomic)."""
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.INTERRUPTED)


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint file the run wrote (from a ``checkpoint`` event).

    Args:
        which: ``"last"`` or ``"best"``.
        epoch: Completed epochs it holds.
        path: The file.
        sha256: Digest of its weights.
        time: When it was written (Unix seconds).
        metric: The validation metric that made it best (``best`` only).
        score: That metric's value (``best`` only).
        complete: False when a stop cut its epoch short (``last`` only).
    """

    which: str
    epoch: int
    path: Path
    sha256: str
    time: float
    metric: str | None = None
    score: float | None = None
    complete: bool = True


@dataclass(frozen=True)
class ProgressInfo:
    """The latest ``progress`` event.

    Args:
        phase: ``"cache"``, ``"train"`` or ``"val"``.
        fraction: Of the phase, in [0, 1].
        samples: Samples (or, for the cache, series) done in the phase.
        samples_total: Samples (series) in the phase.
        epoch: 1-based epoch (0 for the cache).
        eta_s: Seconds left in the phase, or None while unknown.
        samples_per_s: Throughput, or None.
    """

    phase: str
    fraction: float
    samples: int
    samples_total: int
    epoch: int = 0
    eta_s: float | None = None
    samples_per_s: float | None = None


@dataclass
class RunRecord:
    """Everything the panel knows about one run, updated event by event.

    Args:
        name: The run name.
        run_dir: The run folder, when known.
    """

    name: str
    run_dir: Path | None = None
    kind: str = ""
    status: RunStatus = RunStatus.EMPTY
    message: str = ""
    error_type: str = ""
    device: str = ""
    start_epoch: int = 1
    epochs: int = 0
    validation_cadence: int = 1
    best_metric: str = ""
    best_score: float | None = None
    best_epoch: int = 0
    started_at: float | None = None
    last_event_at: float | None = None
    progress: ProgressInfo | None = None
    #: phase → metric → epoch → value.
    curves: dict[str, dict[str, dict[int, float]]] = field(default_factory=lambda: {p: {} for p in PHASES})
    #: ``(phase, epoch)`` of epochs a stop cut short.
    partial: set[tuple[str, int]] = field(default_factory=set)
    checkpoints: dict[str, CheckpointInfo] = field(default_factory=dict)
    #: Time each epoch's last event arrived, for the ETA.
    epoch_done_at: dict[int, float] = field(default_factory=dict)
    #: The run's log as the panel shows it (the child's stderr, notes on events), newest last.
    log: list[str] = field(default_factory=list)

    # --- events -------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> str:
        """Fold one event in.

        Returns:
            The event's name when it changed the record, ``""`` for an event
            this version does not know (ignored, for forward compatibility).

        Raises:
            ValueError: a known event whose fields are missing or of the wrong type.
        """
        name = event.get("event")
        handler = _HANDLERS.get(str(name))
        if handler is None:
            return ""
        try:
            handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed {name} event ({type(exc).__name__}: {exc})") from None
        stamp = event.get("time")
        if isinstance(stamp, (int, float)):
            self.last_event_at = float(stamp)
        return str(name)

    def _on_started(self, e: dict[str, Any]) -> None:
        self.kind = str(e["kind"])
        self.status = RunStatus.STOPPING if self.status is RunStatus.STOPPING else RunStatus.RUNNING
        self.message = ""
        self.device = str(e.get("device") or "")
        self.start_epoch = int(e.get("start_epoch") or 1)
        self.epochs = int(e["epochs"])
        config = e.get("config") or {}
        self.validation_cadence = max(1, int(config.get("validation_cadence") or 1))
        self.best_metric = str(config.get("best_metric") or self.best_metric)
        if e.get("run_dir"):
            self.run_dir = Path(str(e["run_dir"]))
        self.started_at = float(e["time"])
        self.progress = None

    def _on_progress(self, e: dict[str, Any]) -> None:
        self.progress = ProgressInfo(
            phase=str(e["phase"]),
            fraction=min(1.0, max(0.0, float(e["fraction"]))),
            samples=int(e.get("samples") or 0),
            samples_total=int(e.get("samples_total") or 0),
            epoch=int(e.get("epoch") or 0),
            eta_s=_optional_float(e.get("eta_s")),
            samples_per_s=_optional_float(e.get("samples_per_s")),
        )
        if not self.status.ended and self.status is not RunStatus.STOPPING:
            self.status = RunStatus.PREPARING if self.progress.phase == "cache" else RunStatus.RUNNING
        if "epochs" in e:
            self.epochs = int(e["epochs"])

    def _on_epoch(self, e: dict[str, Any]) -> None:
        phase, epoch = str(e["phase"]), int(e["epoch"])
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        metrics = e["metrics"]
        for metric in CURVE_METRICS:
            value = _optional_float(metrics.get(metric))
            if value is not None:
                self.curves[phase].setdefault(metric, {})[epoch] = value
        if e.get("partial"):
            self.partial.add((phase, epoch))
        else:
            self.partial.discard((phase, epoch))
        self.epochs = int(e.get("epochs") or self.epochs)
        self.epoch_done_at[epoch] = float(e["time"])

    def _on_checkpoint(self, e: dict[str, Any]) -> None:
        which = str(e["which"])
        self.checkpoints[which] = CheckpointInfo(
            which=which,
            epoch=int(e["epoch"]),
            path=Path(str(e["path"])),
            sha256=str(e.get("sha256") or ""),
            time=float(e["time"]),
            metric=None if e.get("metric") is None else str(e["metric"]),
            score=_optional_float(e.get("score")),
            complete=bool(e.get("complete", True)),
        )
        if which == "best":
            self.best_metric = str(e.get("metric") or self.best_metric)
            self.best_score = _optional_float(e.get("score"))
            self.best_epoch = int(e["epoch"])

    def _on_finished(self, e: dict[str, Any]) -> None:
        self.status = RunStatus.STOPPED if e["status"] == "stopped" else RunStatus.COMPLETED
        self.message = str(e.get("reason") or "")
        self.best_metric = str(e.get("best_metric") or self.best_metric)
        self.best_score = _optional_float(e.get("best_score"))
        self.best_epoch = int(e.get("best_epoch") or 0)
        self.progress = None

    def _on_error(self, e: dict[str, Any]) -> None:
        self.status = RunStatus.FAILED
        self.message = str(e.get("message") or "the training failed")
        self.error_type = str(e.get("error_type") or "")
        self.progress = None

    # --- what the panel shows -------------------------------------------------------------
    def curve(self, phase: str, metric: str) -> tuple[list[int], list[float]]:
        """``(epochs, values)`` of one metric in one phase, by epoch."""
        points = self.curves.get(phase, {}).get(metric, {})
        epochs = sorted(points)
        return epochs, [points[k] for k in epochs]

    @property
    def completed_epochs(self) -> int:
        """The last epoch whose training phase finished (0 before any)."""
        done = [k for k in self.curves["train"].get("loss", {}) if ("train", k) not in self.partial]
        return max(done, default=0)

    def overall_fraction(self) -> float | None:
        """How much of the planned training is done, in [0, 1]; None while preparing or unknown."""
        p = self.progress
        if p is None or p.phase == "cache" or self.epochs < self.start_epoch or p.epoch < 1:
            return 1.0 if self.status is RunStatus.COMPLETED else None
        validates = p.epoch == 1 or p.epoch % self.validation_cadence == 0 or p.epoch == self.epochs
        share = TRAIN_SHARE if validates else 1.0
        within = p.fraction * share if p.phase == "train" else share + p.fraction * (1.0 - share)
        span = self.epochs - self.start_epoch + 1
        return min(1.0, max(0.0, (p.epoch - self.start_epoch + within) / span))

    def eta_s(self) -> float | None:
        """Seconds until the last planned epoch ends (an estimate), or None while unknown."""
        p = self.progress
        if p is None or p.phase == "cache" or p.eta_s is None or self.status.ended:
            return None
        remaining_epochs = max(0, self.epochs - p.epoch)
        if remaining_epochs == 0:
            return p.eta_s
        per_epoch = self._seconds_per_epoch()
        if per_epoch is None and p.phase == "train" and p.fraction > 0 and p.eta_s is not None:
            per_epoch = p.eta_s / max(1e-6, 1.0 - p.fraction) if p.fraction < 1 else None
        if per_epoch is None:
            return None
        return p.eta_s + remaining_epochs * per_epoch

    def _seconds_per_epoch(self) -> float | None:
        """Mean wall time of the epochs finished since this launch started, or None before the first."""
        if self.started_at is None:
            return None
        done = [(k, t) for k, t in self.epoch_done_at.items() if k >= self.start_epoch and t > self.started_at]
        if not done:
            return None
        epoch, at = max(done)
        return (at - self.started_at) / (epoch - self.start_epoch + 1)

    def detect_checkpoint(self) -> Path | None:
        """The checkpoint "Use for Detect" takes: ``best.pt``, else ``last.pt`` (a run stopped before validating)."""
        candidates = [info.path for key in ("best", "last") if (info := self.checkpoints.get(key)) is not None]
        if self.run_dir is not None:
            layout = RunLayout(self.run_dir)
            candidates += [layout.best, layout.last]
        return next((path for path in candidates if path.is_file()), None)


_HANDLERS = {
    "run_started": RunRecord._on_started,
    "progress": RunRecord._on_progress,
    "epoch": RunRecord._on_epoch,
    "checkpoint": RunRecord._on_checkpoint,
    "finished": RunRecord._on_finished,
    "error": RunRecord._on_error,
}


def _optional_float(value: Any) -> float | None:
    """A finite float, or None for null / non-finite values (the protocol writes NaN as null)."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_duration(seconds: float | None) -> str:
    """``"42 s"``, ``"3:07"`` or ``"1:02:03"``; ``"—"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(record: RunRecord) -> str:
    """One line for the progress bar: phase, epoch, batch and throughput."""
    p = record.progress
    if p is None:
        return record.status.value.capitalize()
    if p.phase == "cache":
        return f"Preparing the crop cache: {p.samples} of {p.samples_total} series"
    phase = "training" if p.phase == "train" else "validation"
    rate = f" · {p.samples_per_s:.0f} samples/s" if p.samples_per_s else ""
    return f"Epoch {p.epoch}/{record.epochs} · {phase} {p.samples}/{p.samples_total}{rate}"
