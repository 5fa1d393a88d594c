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


#: The lock file a running trainer holds (an OS lock: a killed process releases it).
LOCK_FILE_NAME = ".lock"


def prepare_run_dir(root: Path, resume: bool) -> RunLayout:
    """Check (and create) a run folder; see :func:`start_run_dir`, which also locks it and clears dead ends.

    Raises:
        TrainingRunError: a new run would overwrite an existing one, or there is
            nothing to resume.
    """
    return start_run_dir(root, resume).layout


@dataclass
class RunStart:
    """A run folder ready for a start or a resume.

    Args:
        layout: The run folder.
        resume: Whether the run continues from ``last.pt`` (False when a resume
            found no checkpoint yet and starts at epoch 1 with the saved settings).
        notes: What was done to the folder (dead end reused, temporary files removed).
        lock: The open lock file (kept open while the run goes; None where the OS has no locks).
    """

    layout: RunLayout
    resume: bool
    notes: list[str] = field(default_factory=list)
    lock: Any = None

    def release(self) -> None:
        """Close the lock file (the lock goes with it)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def start_run_dir(root: Path, resume: bool) -> RunStart:
    """Lock a run folder, remove what a killed run left, and check that the start or resume makes sense.

    A folder whose run never wrote a checkpoint (killed early, or refused its
    dataset) is a dead end: ``--resume`` starts it again at epoch 1 with its
    saved settings (and any options given), and a new start is refused with a
    message that says so. Temporary files of interrupted atomic writes are
    removed. A folder locked by a live trainer is refused.

    Args:
        root: The run folder.
        resume: Continue the run in it (it must hold ``config.json``); otherwise
            it must not hold a run with a checkpoint.

    Raises:
        TrainingRunError: another trainer runs in the folder, a new run would
            overwrite one with checkpoints, or there is no run to resume.
    """
    paths = RunLayout(Path(root))
    if resume and not paths.config.is_file():
        raise TrainingRunError("holds no config.json: there is no run to resume here", paths.root)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    lock = _lock(paths.root)
    start = RunStart(paths, resume, lock=lock)
    try:
        removed = remove_stale_temporaries(paths)
        if removed:
            start.notes.append(f"removed {removed} temporary file(s) left by an interrupted write")
        has_checkpoint = paths.last.is_file() or paths.best.is_file()
        if resume and paths.last.is_file() and restore_best(paths):
            start.notes.append("best.pt restored from last.pt (a stop came between writing the two)")
        if resume and not paths.last.is_file():
            start.resume = False
            start.notes.append("no checkpoint yet (the run stopped before its first epoch ended): starting at epoch 1")
        elif not resume and paths.holds_run:
            if has_checkpoint:
                raise TrainingRunError(
                    "already holds a training run; choose another run name/--run-dir or pass --resume", paths.root
                )
            raise TrainingRunError(
                "already holds a training run that never wrote a checkpoint (stopped early or refused its input); "
                "pass --resume (with a corrected --data if needed) to start it again at epoch 1 in this folder, "
                "or choose another run name/--run-dir",
                paths.root,
            )
    except BaseException:
        start.release()
        raise
    return start


def restore_best(paths: RunLayout) -> bool:
    """Copy ``last.pt`` to ``best.pt`` when the run was stopped between the two writes of a best epoch.

    ``last.pt`` records the best epoch in its loop state; when that is its own
    epoch, ``best.pt`` must hold the same epoch. A kill after ``last.pt`` was
    written and before ``best.pt`` was copied leaves ``best.pt`` missing or
    older, and no later epoch would rewrite it unless it scored higher.

    Returns:
        Whether ``best.pt`` was restored.
    """
    from engine.checkpoints import load_checkpoint
    from engine.files import copy_file_atomic

    last = load_checkpoint(paths.last).metadata
    epoch = int(last.get("epoch", 0))
    best_epoch = int(dict(last.get("loop_state") or {}).get("best_epoch", 0))
    if not epoch or best_epoch != epoch:
        return False
    if paths.best.is_file() and int(load_checkpoint(paths.best).metadata.get("epoch", 0)) == epoch:
        return False
    copy_file_atomic(paths.last, paths.best)
    return True


def remove_stale_temporaries(paths: RunLayout) -> int:
    """Remove the temporary files (``.<name>.<random hex>.tmp*``) that a killed atomic write leaves; returns how many.

    Only call it while holding the run's lock: a live writer's temporary file would go too.
    """
    removed = 0
    for folder in (paths.root, paths.checkpoints):
        for temp in folder.glob(".*.tmp*"):
            if temp.is_file():
                temp.unlink(missing_ok=True)
                removed += 1
    return removed


def _lock(root: Path) -> Any:
    """Take the run folder's lock without waiting.

    Raises:
        TrainingRunError: a live trainer holds it.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the folder checks still apply
        return None
    handle = open(root / LOCK_FILE_NAME, "a+", encoding="utf-8")  # noqa: SIM115 — held open while the run goes
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise TrainingRunError("a training is running in this folder now; stop it first or choose another", root) from None
    return handle


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

