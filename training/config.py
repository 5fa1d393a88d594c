"""A training run's settings: one frozen dataclass, saved as ``config.json`` and in checkpoints.

Defaults follow SPEC §3 and differ per model kind (:func:`training.choices.kind_defaults`);
every one is a command-line option.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.choices import PRECISION_CHOICES
from engine.files import write_text_atomic
from training.augmentation import AugmentConfig
from training.choices import OPTIMIZERS, TRAIN_KINDS



@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Args:
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        run_name: Name of the run (events and the run folder carry it).
        data: LUNA16-format dataset folder.
        run_dir: The run's folder (config, metrics, TensorBoard, checkpoints).
        epochs: Last epoch to train (a resumed run continues up to it).
        batch_size: Training samples per step, per process.
        val_batch_size: Validation samples per forward pass.
        num_workers: Processes reading the cache when it stays on disk, and
            building missing cache shards.
        ratio: Negatives per positive (0 = natural, unbalanced order); for
            segmentation, candidate-centred crops per nodule crop (0 = the
            book's nodule crops only).
        epoch_size: Training samples per epoch (all processes together).
        val_stride: Every ``val_stride``-th series (sorted uids) is validation.
        validation_cadence: Validate at epoch 1 and every this many epochs.
        augment: Augmentation switches and magnitudes.
        finetune: Classifier checkpoint to start from (head re-initialised).
        finetune_depth: Trained parameterised children counted from the end
            (1 = head only, 2 = last conv block + head).
        init: Classifier or malignancy checkpoint whose every weight, head
            included, the run starts from, all of them trained (to continue a
            released model on new data when its run folder is gone).
        init_depth: With ``init``: train only the last this many parameterised
            children (2 = last conv block + head, which keeps the trunk a
            malignancy model fine-tuned from the source shares); 0 = all.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: Autocast type: ``auto`` (bfloat16 — float16 where bfloat16
            is unsupported — on CUDA, float32 elsewhere) or explicit.
        seed: Seeds sampling, augmentation and initialisation.
        optimizer: ``sgd`` or ``adam``.
        lr: Learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        fn_weight: Segmentation: weight of the false-negative Dice term.
        dice_over: Segmentation: soft-Dice sums per ``sample`` (the book) or
            over the whole ``batch`` (gives crops without nodule a say).
        bce_weight: Segmentation: weight of an added pixel-wise binary
            cross-entropy term (0 = the book's loss).
        crop_size: Segmentation: side of the random training window (from 96).
        nodule_slices: Segmentation: train on each nodule's ``centre`` slice
            (the book) or on ``all`` its slices that show mask.
        candidates: Candidates CSV to use instead of ``data/candidates.csv``.
        candidate_positives: Also use the candidates CSV's class-1 rows that lie
            inside an annotated nodule as positives (see :meth:`engine.luna.LunaIndex.open`).
        best_metric: Validation metric that picks ``best.pt``.
        cache_dir: Crop cache folder (default: per-user cache, per dataset).
        cache_residency: ``auto``, ``device``, ``memory`` or ``disk``.
        threshold: Probability at or above which a sample/pixel is positive.
        channels_last: Keep the model and its inputs in channels-last memory
            layout (much faster convolutions on CPUs and on GPUs with AMP).
    """

    kind: str
    run_name: str
    data: str
    run_dir: str
    epochs: int = 1
    batch_size: int = 32
    val_batch_size: int = 64
    num_workers: int = 0
    ratio: int = 1
    epoch_size: int = 200_000
    val_stride: int = 10
    validation_cadence: int = 5
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    finetune: str | None = None
    finetune_depth: int = 1
    init: str | None = None
    init_depth: int = 0
    device: str = "auto"
    precision: str = "auto"
    seed: int = 1
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.99
    weight_decay: float = 0.0
    fn_weight: float = 8.0
    dice_over: str = "sample"
    bce_weight: float = 0.0
    crop_size: int = 64
    nodule_slices: str = "centre"
    candidates: str | None = None
    candidate_positives: bool = False
    best_metric: str = "f1"
    cache_dir: str | None = None
    cache_residency: str = "auto"
    threshold: float = 0.5
    channels_last: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in TRAIN_KINDS:
            problems.append(f"kind must be one of {', '.join(TRAIN_KINDS)}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISION_CHOICES:
            problems.append(f"precision must be one of {', '.join(PRECISION_CHOICES)}")
        for name in ("epochs", "batch_size", "val_batch_size", "epoch_size", "val_stride", "validation_cadence"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.ratio < 0 or self.num_workers < 0:
            problems.append("ratio and num_workers must not be negative")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append("lr must be a positive number")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            problems.append("momentum must be in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append("weight_decay must not be negative")
        if not 0 < self.threshold < 1:
            problems.append("threshold must be between 0 and 1")
        if self.dice_over not in ("sample", "batch"):
            problems.append("dice_over must be 'sample' or 'batch'")
        if self.nodule_slices not in ("centre", "all"):
            problems.append("nodule_slices must be 'centre' or 'all'")
        if self.finetune_depth not in (1, 2):
            problems.append("finetune_depth must be 1 or 2")
        if self.init is not None and (self.finetune is not None or self.kind == "segmentation"):
            problems.append("init is for classifier and malignancy runs, and not together with finetune")
        if self.init_depth < 0:
            problems.append("init_depth must not be negative")
        if self.kind == "segmentation" and not 8 <= self.crop_size <= 96:
            problems.append("crop_size must be between 8 and 96")
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems))

    @property
    def fine_tuning(self) -> bool:
        """Whether the run starts from another model's weights."""
        return self.finetune is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["augment"] = AugmentConfig(**kwargs.get("augment", {}))
        return cls(**kwargs)

    def with_updates(self, **changes: Any) -> "TrainConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)


def write_config(path: Path, config: TrainConfig, extra: dict[str, Any]) -> None:
    """Write ``config.json``: the settings plus facts about the launch (argv, versions, ...)."""
    record = {"config": config.to_dict(), **extra}
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_config(path: Path) -> TrainConfig:
    """Read the settings back from a run's ``config.json``."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return TrainConfig.from_dict(record["config"])
