"""A training run's folder: its layout, checkpoints (``last``/``best``) and resuming.

Layout (DESIGN.md "Files the user sees")::

    run_dir/config.json            settings + launch facts
    run_dir/metrics.jsonl          every event, one JSON object per line
    run_dir/tensorboard/{train,val}/
    run_dir/checkpoints/last.pt    after every epoch (and on stop)
    run_dir/checkpoints/best.pt    when the validation score improves
    run_dir/model_card.md          what the best checkpoint is
    run_dir/STOP                   created by whoever wants the run to stop

Checkpoints are the engine's format (:mod:`engine.checkpoints`), written
atomically; ``best.pt`` is an atomic copy of the ``last.pt`` just written.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from engine.errors import TrainingRunError
from training.stopping import STOP_FILE_NAME


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def card(self) -> Path:
        return self.root / "model_card.md"

    @property
    def stop_file(self) -> Path:
        return self.root / STOP_FILE_NAME

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"


def prepare_run_dir(root: Path, resume: bool) -> RunPaths:
    """Check (and create) a run folder.

    Args:
        root: The run folder.
        resume: Continue the run in it (it must hold ``config.json`` and
            ``checkpoints/last.pt``); otherwise it must not hold a run yet.

    Raises:
        TrainingRunError: a new run would overwrite an existing one, or there is
            nothing to resume.
    """
    paths = RunPaths(Path(root))
    if resume:
        if not paths.config.is_file():
            raise TrainingRunError("holds no config.json: there is no run to resume here", paths.root)
        if not paths.last.is_file():
            raise TrainingRunError("has no checkpoints/last.pt yet: nothing to resume (start it again instead)", paths.root)
    elif paths.config.exists():
        raise TrainingRunError("already holds a training run; choose another run name/--run-dir or pass --resume", paths.root)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    return paths


@dataclass
class LoopState:
    """Progress of a run, saved in every checkpoint's metadata.

    Args:
        epoch: Completed epochs.
        samples_seen: Training samples processed (all ranks).
        best_score: Best validation score so far (-inf before the first validation).
        best_epoch: Epoch of ``best_score`` (0: none yet).
        best_metrics: Validation metrics of the best epoch.
        last_metrics: ``{"train": ..., "val": ...}`` of the latest epoch.
    """

    epoch: int = 0
    samples_seen: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        """Plain values for the checkpoint (no infinities)."""
        values = asdict(self)
        values["best_score"] = None if not math.isfinite(self.best_score) else self.best_score
        return values

    @classmethod
    def from_metadata(cls, values: dict[str, Any]) -> "LoopState":
        """Rebuild from :meth:`to_metadata` output."""
        state = cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})
        state.best_score = -math.inf if state.best_score is None else float(state.best_score)
        return state


def save_run_checkpoint(
    path: Path,
    model: nn.Module,
    kind: str,
    model_args: dict[str, Any],
    metadata: dict[str, Any],
    optimizer: Any,
) -> str:
    """Write one checkpoint (atomic) with the optimizer state; returns the weights' sha256."""
    from engine.checkpoints import save_checkpoint

    return save_checkpoint(
        path,
        model,
        kind,
        model_args=model_args,
        metadata=metadata,
        optimizer_state=optimizer.state_dict(),
        optimizer_name=type(optimizer).__name__,
    )


def atomic_copy(source: Path, destination: Path) -> None:
    """Copy a file so that ``destination`` is always either the old or the new file."""
    handle, temp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, destination)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
