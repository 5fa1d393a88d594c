"""A training run's folder: preparing it, its checkpoints (``last``/``best``) and resuming.

The layout itself (``config.json``, ``metrics.jsonl``, ``checkpoints/last.pt``,
``checkpoints/best.pt``, ``model_card.md``, ``STOP``, ``tensorboard/``) is
:class:`engine.run_layout.RunLayout`, which the app reads too. Checkpoints are
the engine's format (:mod:`engine.checkpoints`), written atomically;
``best.pt`` is an atomic copy of the ``last.pt`` just written.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from engine.errors import TrainingRunError
from engine.run_layout import RunLayout


def prepare_run_dir(root: Path, resume: bool) -> RunLayout:
    """Check (and create) a run folder.

    Args:
        root: The run folder.
        resume: Continue the run in it (it must hold ``config.json`` and
            ``checkpoints/last.pt``); otherwise it must not hold a run yet.

    Raises:
        TrainingRunError: a new run would overwrite an existing one, or there is
            nothing to resume.
    """
    paths = RunLayout(Path(root))
    if resume:
        if not paths.config.is_file():
            raise TrainingRunError("holds no config.json: there is no run to resume here", paths.root)
        if not paths.last.is_file():
            raise TrainingRunError("has no checkpoints/last.pt yet: nothing to resume (start it again instead)", paths.root)
    elif paths.holds_run:
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

