"""The segmentation U-Net (SPEC §2–3): Dice + weighted false-negative Dice, Adam, best by recall.

A training batch is a set of cached ``(7, 96, 96)`` nodule crops; on the
device each gets a random ``crop_size``² window and, when enabled, the same
random affine warp for image and label. Validation runs whole slices.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from training import sampling
from training.augmentation import SegmentationAugmentation, random_crops_2d
from training.config import TrainConfig
from training.distributed import DistContext, all_reduce_sum
from training.metrics import SEGMENTATION_SUM_FIELDS, segmentation_batch_sums, segmentation_loss, segmentation_metrics
from training.prefetch import prefetched
from training.segmentation_data import SegmentationData
from training.task import Batch, StepOutput, Task, Tracker

#: Validation slices kept for TensorBoard overlay images.
OVERLAY_SAMPLES = 4


def _float32_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Forward pre-hook: the module's input in float32."""
    return tuple(a.float() for a in args)


class SegmentationTracker(Tracker):
    """Pixel counts of one phase, plus a few slices for overlay images."""

    def __init__(self, threshold: float, keep_images: int, device: torch.device) -> None:
        self.threshold = threshold
        self.device = device
        self.keep_images = keep_images
        self._sums: torch.Tensor | None = None
        self.images: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, output: StepOutput) -> None:
        sums = segmentation_batch_sums(output.predictions.detach().float(), output.labels, output.losses.detach(), self.threshold)
        self._sums = sums if self._sums is None else self._sums + sums
        if len(self.images) < self.keep_images and output.inputs is not None:
            take = min(self.keep_images - len(self.images), output.inputs.shape[0])
            centre = output.inputs.shape[1] // 2
            for i in range(take):
                self.images.append(
                    (
                        output.inputs[i, centre].detach().float().cpu().numpy(),
                        output.labels[i, 0].detach().cpu().numpy(),
                        output.predictions[i, 0].detach().float().cpu().numpy(),
                    )
                )

    def finish(self, context: DistContext) -> dict[str, float]:
        if self._sums is None:
            sums = torch.zeros(len(SEGMENTATION_SUM_FIELDS), dtype=torch.float64, device=self.device)
        else:
            sums = self._sums.clone()
        return segmentation_metrics(all_reduce_sum(sums, context).cpu())

    def write_tensorboard(self, writer: Any, step: int) -> None:
        from training.tensorboard_log import segmentation_overlays

        segmentation_overlays(writer, step, self.images, self.threshold)


class SegmentationTask(Task):
    """Trains :class:`~engine.models.segmentation.SegmentationModel`.

    Args:
        config: The run's settings.
        context: This process's place in the run.
        device: The training device.
        data: The cached nodule crops and validation slices.
    """

    kind = "segmentation"

    def __init__(self, config: TrainConfig, context: DistContext, device: torch.device, data: SegmentationData) -> None:
        super().__init__(config, context, device)
        self.data = data
        self._augmentation: SegmentationAugmentation | None = None

    def model_args(self) -> dict[str, Any]:
        return {"in_channels": 7, "n_classes": 1, "depth": 3, "wf": 4, "padding": True, "batch_norm": True, "up_mode": "upconv"}

    def build_model(self) -> nn.Module:
        from engine.models.segmentation import SegmentationModel

        return SegmentationModel(**self.model_args())

    def prepare_model(self, model: nn.Module, load_weights: bool) -> dict[str, Any]:
        """Make the output sigmoid run in float32 under autocast.

        In bfloat16 every probability above about 0.996 rounds to exactly 1,
        where the sigmoid's gradient is 0: a confidently wrong pixel could
        never be corrected.
        """
        model.final.register_forward_pre_hook(_float32_input)
        return {}

    # --- data -----------------------------------------------------------------
    def train_samples(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        rows = self.data.train_epoch(epoch, c.seed, c.epoch_size, c.ratio, c.nodule_slices)
        return rows, rows

    def read_numpy(self, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops and masks as numpy arrays (runs in DataLoader workers)."""
        return self.data.crops.gather_numpy(rows), self.data.labels.gather_numpy(rows)

    def gather(self, rows: np.ndarray, labels: np.ndarray) -> Batch:
        return Batch(self.data.crops.gather(rows), self.data.labels.gather(rows))

    def _feed(self, rows: np.ndarray, labels: np.ndarray, batches: list[slice]) -> Iterator[Batch]:
        if self.config.num_workers > 0 and self.data.crops.residency != "device":
            for inputs, masks in prefetched(self.read_numpy, rows, labels, batches, self.config.num_workers, self.device):
                yield Batch(inputs, masks)
            return
        yield from super()._feed(rows, labels, batches)

    def _validation(self) -> np.ndarray:
        samples = self.data.validation_samples()
        return samples[sampling.shard(len(samples), self.context.rank, self.context.world_size, equal=False)]

    def val_size(self) -> int:
        return len(self._validation())

    def val_batch_count(self) -> int:
        samples = self._validation()
        per_series = np.unique(samples[:, 0], return_counts=True)[1] if len(samples) else np.zeros(0, int)
        return int(sum(math.ceil(n / self.config.val_batch_size) for n in per_series))

    def val_batches(self) -> Iterator[Batch]:
        for image, label in self.data.validation_batches(self._validation(), self.config.val_batch_size):
            yield Batch(
                torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True),
                torch.from_numpy(np.ascontiguousarray(label)).to(self.device, non_blocking=True),
            )

    # --- computation ----------------------------------------------------------
    def step(self, model: nn.Module, batch: Batch, training: bool, generator: torch.Generator) -> StepOutput:
        image = batch.inputs.to(torch.float32).clamp_(-1000, 1000)
        label = batch.labels.unsqueeze(1)
        if training:
            image, label = random_crops_2d(image, label, self.config.crop_size, generator)
            if self.config.augment.enabled:
                if self._augmentation is None or self._augmentation.generator is not generator:
                    self._augmentation = SegmentationAugmentation(self.config.augment, generator)
                image, label = self._augmentation(image, label)
        label = label.bool()
        prediction = model(image.contiguous(memory_format=self.memory_format))
        c = self.config
        losses = segmentation_loss(prediction.float(), label, c.fn_weight, c.dice_over, c.bce_weight)
        return StepOutput(losses=losses, predictions=prediction, labels=label, inputs=None if training else image)

    def new_tracker(self, training: bool) -> Tracker:
        keep = 0 if training or not self.context.is_main else OVERLAY_SAMPLES
        return SegmentationTracker(self.config.threshold, keep, self.device)
