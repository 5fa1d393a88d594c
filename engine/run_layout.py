"""A training run's folder: the one spelling of its layout, shared by the trainers and the app.

Layout (DESIGN.md "Files the user sees")::

    run_dir/config.json            settings + launch facts
    run_dir/metrics.jsonl          every event, one JSON object per line
    run_dir/tensorboard/{train,val}/
    run_dir/checkpoints/last.pt    after every epoch (and on stop)
    run_dir/checkpoints/best.pt    when the validation score improves
    run_dir/model_card.md          what the best checkpoint is
    run_dir/STOP                   created by whoever wants the run to stop

The trainers write these files (``training.runs``), the app reads them and
writes ``STOP`` (``app.training``). Torch-free and Qt-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import TrainingRunError

#: Name of the file whose appearance in the run folder asks the run to stop.
STOP_FILE_NAME = "STOP"
#: What the app writes into the stop file (its content is not read; its existence is the request).
STOP_NOTE = "stop requested by the LungCAD training panel\n"
#: The sub-folders of the TensorBoard event files, one per phase.
TENSORBOARD_PHASES = ("train", "val")
#: A run name: it becomes a folder name, so letters, digits, ``.``, ``_``, ``-``; at most 80.
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class RunLayout:
    """The files of one run folder.

    Args:
        root: The run folder.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """``config.json``: the settings and every launch's facts."""
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: the event stream, appended while the run goes."""
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        """The checkpoints folder."""
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        """``checkpoints/last.pt``, written after every epoch."""
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        """``checkpoints/best.pt``, the epoch with the best validation score."""
        return self.checkpoints / "best.pt"

    @property
    def card(self) -> Path:
        """``model_card.md``, describing ``best.pt``."""
        return self.root / "model_card.md"

    @property
    def stop_file(self) -> Path:
        """The ``STOP`` file."""
        return self.root / STOP_FILE_NAME

    @property
    def tensorboard(self) -> Path:
        """The TensorBoard folder (one sub-folder per phase, :data:`TENSORBOARD_PHASES`)."""
        return self.root / "tensorboard"

    @property
    def holds_run(self) -> bool:
        """Whether a run was started here (``config.json`` exists)."""
        return self.config.exists()

    @property
    def looks_like_run(self) -> bool:
        """Whether the folder holds a run's ``config.json`` or ``metrics.jsonl`` (a runs list shows it)."""
        return self.config.is_file() or self.metrics.is_file()

    def detect_checkpoint(self) -> Path | None:
        """The checkpoint Detect takes from this run: ``best.pt``, else ``last.pt`` (stopped before validating), else None."""
        return next((path for path in (self.best, self.last) if path.is_file()), None)

    def request_stop(self, note: str = STOP_NOTE) -> Path:
        """Create the ``STOP`` file (the trainer finishes its batch, writes checkpoints and exits).

        Returns:
            The stop file.

        Raises:
            OSError: it cannot be written.
        """
        self.stop_file.write_text(note, encoding="utf-8")  # only its existence counts: no atomic write needed
        return self.stop_file

    @classmethod
    def of_checkpoint(cls, path: str | Path) -> RunLayout | None:
        """The run folder holding ``path`` as ``<run>/checkpoints/<file>``, or None when it is no run's checkpoint."""
        path = Path(path)
        layout = cls(path.parent.parent)
        if path.parent.name == "checkpoints" and layout.config.is_file():
            return layout
        return None


def check_run_name(name: str) -> None:
    """Refuse a run name that cannot be a folder name.

    Raises:
        TrainingRunError: the name has characters other than letters, digits,
            ``.``, ``_`` or ``-``, starts with a punctuation mark, or is longer than 80.
    """
    if not _RUN_NAME.match(name):
        raise TrainingRunError(
            f"run name {name!r} cannot be a folder name: use letters, digits, '.', '_' or '-' (at most 80)"
        )
