"""What the Training panel asks for: a checked dataset folder and a run request turned into CLI arguments.

:class:`TrainRequest` captures every setting of a run before it starts
(frozen), checks it, and gives the ``python -m training`` arguments
(docs/training-protocol.md). :func:`check_dataset` looks at a LUNA16-format
folder the way the trainers will, cheaply (``candidates.csv`` is not read),
so the panel can say what is wrong before a child process is started.
Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import TrainingRunError
from engine.luna import LunaIndex
from engine.run_layout import RunLayout, check_run_name
from training.choices import AUGMENTATIONS, TRAIN_KINDS

#: The panel's names for the model kinds the trainers know (:data:`training.choices.TRAIN_KINDS`).
KIND_LABELS = dict(zip(TRAIN_KINDS, ("Segmentation (U-Net)", "Nodule classifier", "Malignancy (fine-tune a classifier)")))


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset folder offers the trainers.

    Args:
        root: The folder.
        series: Series on disk.
        nodules: Annotated nodules in those series.
        has_candidates: ``candidates.csv`` is there (the classifiers need it).
        has_malignancy: ``annotations_with_malignancy.csv`` is there (malignancy needs it).
    """

    root: Path
    series: int
    nodules: int
    has_candidates: bool
    has_malignancy: bool

    def problem_for(self, kind: str) -> str | None:
        """Why this dataset cannot train ``kind``, or None when it can."""
        if kind in ("classifier", "malignancy") and not self.has_candidates:
            return f"{self.root} has no candidates.csv, which the {kind} model needs"
        if kind == "malignancy" and not self.has_malignancy:
            return f"{self.root} has no annotations_with_malignancy.csv, which the malignancy model needs"
        return None

    def summary(self) -> str:
        """E.g. ``"4 series, 9 nodules; candidates.csv; malignancy labels"``."""
        extras = [name for ok, name in ((self.has_candidates, "candidates.csv"), (self.has_malignancy, "malignancy labels")) if ok]
        return f"{self.series} series, {self.nodules} nodules" + (f"; {', '.join(extras)}" if extras else "")


def check_dataset(folder: str | Path) -> DatasetInfo:
    """Look at a LUNA16-format folder (``subset*/<uid>.mhd``, annotation CSVs) without reading the candidates.

    Raises:
        DatasetError: not a folder, no series, no annotations, or a malformed CSV;
            the message names the folder and the problem.
    """
    root = Path(folder).expanduser()
    index = LunaIndex.open(root, read_candidates=False)
    return DatasetInfo(
        root=root.resolve(),
        series=len(index.series_paths),
        nodules=len(index.annotations),
        has_candidates=(root / "candidates.csv").is_file(),
        has_malignancy=index.has_malignancy,
    )


@dataclass(frozen=True)
class TrainRequest:
    """One training run to start.

    Args:
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        data: The LUNA16-format dataset folder.
        run_name: Name of the run; its folder is ``runs_root / run_name``.
        runs_root: Parent folder of runs.
        epochs: Epochs to train (≥ 1).
        batch_size: Samples per step, or None for the kind's default.
        ratio: Negatives per positive (0 = natural order), or None for the default.
        epoch_size: Training samples per epoch, or None for the default.
        augment: Augmentations turned on (names from :data:`training.choices.AUGMENTATIONS`),
            each with the book's magnitude.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        finetune: Classifier checkpoint to start from (malignancy needs one).
        extra: Further CLI options, passed as they are (e.g. ``--lr 0.01``).
    """

    kind: str
    data: Path
    run_name: str
    runs_root: Path
    epochs: int = 1
    batch_size: int | None = None
    ratio: int | None = None
    epoch_size: int | None = None
    augment: tuple[str, ...] = ()
    device: str = "auto"
    finetune: Path | None = None
    extra: tuple[str, ...] = ()

    @property
    def run_dir(self) -> Path:
        """The run's own folder (the child's working directory)."""
        return Path(self.runs_root) / self.run_name

    def check(self) -> None:
        """Refuse settings the trainer would refuse, with a message for the panel.

        Raises:
            TrainingRunError: unknown kind or augmentation, a bad run name, a
                folder that already holds a run, a malignancy run without a
                classifier to fine-tune, a missing checkpoint, or counts below 1.
        """
        if self.kind not in TRAIN_KINDS:
            raise TrainingRunError(f"unknown model kind {self.kind!r}; choose one of {', '.join(TRAIN_KINDS)}")
        check_run_name(self.run_name)
        if RunLayout(self.run_dir).holds_run:
            raise TrainingRunError("already holds a training run; choose another run name", self.run_dir)
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            raise TrainingRunError(f"unknown augmentation(s) {', '.join(unknown)}")
        for name, value in (("epochs", self.epochs), ("batch size", self.batch_size), ("samples per epoch", self.epoch_size)):
            if value is not None and value < 1:
                raise TrainingRunError(f"{name} must be at least 1, got {value}")
        if self.ratio is not None and self.ratio < 0:
            raise TrainingRunError(f"the balancing ratio must be 0 or more, got {self.ratio}")
        if self.kind == "malignancy" and self.finetune is None:
            raise TrainingRunError("the malignancy model is fine-tuned from a nodule classifier: choose its checkpoint")
        if self.finetune is not None and not Path(self.finetune).is_file():
            raise TrainingRunError("no such checkpoint file to fine-tune from", self.finetune)

    def arguments(self) -> list[str]:
        """The arguments after ``python -m training`` (paths absolute: the child runs in the run folder)."""
        # the run name goes first: an option with an optional value (--augment-noise) would swallow it at the end
        args = [self.kind, self.run_name, "--data", str(Path(self.data).resolve()), "--run-dir", str(self.run_dir.resolve()),
                "--epochs", str(self.epochs)]
        for option, value in (("--batch-size", self.batch_size), ("--ratio", self.ratio), ("--epoch-size", self.epoch_size)):
            if value is not None:
                args += [option, str(value)]
        for name in AUGMENTATIONS:
            if name in self.augment:
                args.append(f"--augment-{name}")  # without a value: the book's magnitude
        if self.device and self.device != "auto":
            args += ["--device", self.device]
        if self.finetune is not None:
            args += ["--finetune", str(Path(self.finetune).resolve())]
        return args + list(self.extra)


def default_run_name(kind: str, stamp: str) -> str:
    """``"<kind>-<stamp>"``, e.g. ``segmentation-20240501-1412``."""
    return f"{kind}-{stamp}"

