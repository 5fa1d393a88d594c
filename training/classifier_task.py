"""The nodule classifier and the malignancy fine-tune (SPEC §2–3).

Both train the same 3D CNN on cached ``(32, 48, 48)`` crops with
cross-entropy; they differ in what a positive is (nodule / malignant), in
sampling, and in the validation metric that picks the best epoch (F1 / ROC
AUC). Fine-tuning loads every weight but the head from a classifier
checkpoint (ours or the book's) and trains only the last ``finetune_depth``
parameterised children; the frozen ones stay in eval mode, so their
BatchNorm statistics stay those of the source model.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.crops import classifier_input
from engine.errors import CheckpointKindError, CheckpointShapeError
from training import sampling
from training.augmentation import augment_volumes
from training.config import TrainConfig
from training.datasets import ClassificationData
from training.distributed import DistContext, gather_arrays
from training.metrics import classification_metrics
from training.prefetch import prefetched
from training.task import Batch, StepOutput, Task, Tracker


def parameterised_children(model: nn.Module) -> list[str]:
    """Names of the model's direct children that hold parameters, in order."""
    return [name for name, child in model.named_children() if any(True for _ in child.parameters())]


def trainable_children(model: nn.Module, depth: int) -> list[str]:
    """The last ``depth`` parameterised children (1: the head; 2: last conv block and head)."""
    return parameterised_children(model)[-depth:]


def load_backbone(model: nn.Module, path: str) -> dict[str, Any]:
    """Copy every weight but the head's from a classifier checkpoint.

    Args:
        model: A freshly built :class:`~engine.models.classifier.NoduleClassifier`.
        path: Our classifier/malignancy checkpoint or a book ``LunaModel`` ``.state`` file.

    Returns:
        The source checkpoint's model arguments and id, for the run's records.

    Raises:
        CheckpointKindError: the checkpoint holds a segmentation model.
        CheckpointError: the file is unusable (see :func:`engine.checkpoints.load_checkpoint`).
    """
    from engine.checkpoints import load_checkpoint

    source = load_checkpoint(path, map_location="cpu")
    if source.kind == "segmentation":
        raise CheckpointKindError("holds a segmentation model; fine-tuning needs a classifier checkpoint", path)
    head = parameterised_children(model)[-1]
    # a size or shape head belongs to the source's CNN head (fitted to it), so it goes with it
    state = {k: v for k, v in source.model.state_dict().items() if k.split(".")[0] not in (head, "size_head", "shape_head")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(k.split(".")[0] != head for k in missing):
        raise CheckpointShapeError(f"does not fit the classifier: missing {missing[:3]}, unexpected {unexpected[:3]}", path)
    return {"source": str(path), "source_id": source.model_id, "source_kind": source.kind}


def load_all_weights(model: nn.Module, path: str) -> dict[str, Any]:
    """Copy every weight, head included, from a classifier or malignancy checkpoint of the same shape.

    Raises:
        CheckpointKindError: the checkpoint holds a segmentation model.
        CheckpointShapeError: its weights do not fit ``model``.
        CheckpointError: the file is unusable.
    """
    from engine.checkpoints import load_checkpoint

    source = load_checkpoint(path, map_location="cpu")
    if source.kind == "segmentation":
        raise CheckpointKindError("holds a segmentation model; --init needs a classifier checkpoint", path)
    # a model's size or shape head is fitted to its CNN (training size-head / shape-head); training changes
    # the CNN, so the head is left behind and must be fitted again on the result
    heads = ("size_head.", "shape_head.")
    state = {k: v for k, v in source.model.state_dict().items() if not k.startswith(heads)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointShapeError(f"does not fit the classifier: {str(exc).splitlines()[0]}", path) from None
    left = sorted({k.split(".")[0] for k in source.model.state_dict() if k.startswith(heads)})
    dropped = {"init_dropped": ",".join(left)} if left else {}
    return {"init": str(path), "init_id": source.model_id, "init_kind": source.kind, **dropped}


class ClassificationTracker(Tracker):
    """Labels, positive-class probabilities and losses of one phase."""

    def __init__(self, with_auc: bool, threshold: float) -> None:
        self.with_auc = with_auc
        self.threshold = threshold
        self._parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, output: StepOutput) -> None:
        self._parts.append((output.labels.detach(), output.predictions.detach().float(), output.losses.detach()))

    def finish(self, context: DistContext) -> dict[str, float]:
        if self._parts:
            labels, probs, losses = (torch.cat(t).cpu().numpy() for t in zip(*self._parts))
        else:
            labels, probs, losses = np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
        self.arrays = gather_arrays({"labels": labels, "probs": probs, "losses": losses}, context)
        a = self.arrays
        return classification_metrics(a["labels"], a["probs"], a["losses"], self.threshold, self.with_auc)

    def write_tensorboard(self, writer: Any, step: int) -> None:
        from training.tensorboard_log import classification_figures

        classification_figures(writer, step, self.arrays["labels"], self.arrays["probs"], with_roc=self.with_auc)


class ClassifierTask(Task):
    """Nodule vs non-nodule (``malignancy=False``) or malignant vs benign (``True``).

    Args:
        config: The run's settings.
        context: This process's place in the run.
        device: The training device.
        data: The cached crops and their table.
    """

    channels_last_format = torch.channels_last_3d

    def __init__(self, config: TrainConfig, context: DistContext, device: torch.device, data: ClassificationData) -> None:
        super().__init__(config, context, device)
        self.kind = config.kind
        self.data = data
        self.malignancy = config.kind == "malignancy"
        self.frozen: list[str] = []

    def model_args(self) -> dict[str, Any]:
        return {"in_channels": 1, "conv_channels": 8}

    def build_model(self) -> nn.Module:
        from engine.models.classifier import NoduleClassifier

        return NoduleClassifier(**self.model_args())

    def prepare_model(self, model: nn.Module, load_weights: bool) -> dict[str, Any]:
        if self.config.init:
            info = load_all_weights(model, self.config.init) if load_weights else {}
            depth = self.config.init_depth or len(parameterised_children(model))
        elif self.config.finetune:
            info = load_backbone(model, self.config.finetune) if load_weights else {}
            depth = self.config.finetune_depth
        else:
            return {}
        trained = set(trainable_children(model, depth))
        self.frozen = [name for name in parameterised_children(model) if name not in trained]
        for name in self.frozen:
            getattr(model, name).requires_grad_(False)
        return {**info, "trained_children": sorted(trained)}

    def set_train_mode(self, model: nn.Module) -> None:
        model.train()
        inner = model.module if hasattr(model, "module") else model
        for name in self.frozen:
            getattr(inner, name).eval()

    # --- data -----------------------------------------------------------------
    def train_samples(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        if self.malignancy:
            return self.data.malignancy_epoch(epoch, c.seed, c.ratio, c.epoch_size)
        return self.data.nodule_epoch(epoch, c.seed, c.ratio, c.epoch_size)

    def _validation(self) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = self.data.malignancy_validation() if self.malignancy else self.data.nodule_validation()
        share = sampling.shard(len(rows), self.context.rank, self.context.world_size, equal=False)
        return rows[share], labels[share]

    def val_size(self) -> int:
        return len(self._validation()[0])

    def read_numpy(self, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops and labels as numpy arrays (runs in DataLoader workers)."""
        return self.data.crops.gather_numpy(rows), labels

    def gather(self, rows: np.ndarray, labels: np.ndarray) -> Batch:
        return Batch(self.data.crops.gather(rows), torch.from_numpy(labels).to(self.device, non_blocking=True))

    def _feed(self, rows: np.ndarray, labels: np.ndarray, batches: list[slice]) -> Iterator[Batch]:
        if self.config.num_workers > 0 and self.data.crops.residency != "device":
            for inputs, batch_labels in prefetched(
                self.read_numpy, rows, labels, batches, self.config.num_workers, self.device
            ):
                yield Batch(inputs, batch_labels)
            return
        yield from super()._feed(rows, labels, batches)

    def val_batches(self) -> Iterator[Batch]:
        rows, labels = self._validation()
        return self._feed(rows, labels, sampling.batch_slices(len(rows), self.config.val_batch_size))

    # --- computation ----------------------------------------------------------
    def step(self, model: nn.Module, batch: Batch, training: bool, generator: torch.Generator) -> StepOutput:
        x = classifier_input(batch.inputs)
        if training and self.config.augment.enabled:
            x = augment_volumes(x, self.config.augment, generator)
        logits, probabilities = model(x.contiguous(memory_format=self.memory_format))
        losses = F.cross_entropy(logits.float(), batch.labels, reduction="none")
        return StepOutput(losses=losses, predictions=probabilities[:, 1], labels=batch.labels)

    def new_tracker(self, training: bool) -> Tracker:
        return ClassificationTracker(with_auc=True, threshold=self.config.threshold)
