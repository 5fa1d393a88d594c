"""What the shared training loop needs from each model kind.

A :class:`Task` knows its model, its data and its loss; the loop in
:mod:`training.loop` knows the order of things (train epoch → validate →
checkpoint → log → stop check), devices, precision, distribution and logging.
A :class:`Tracker` accumulates one epoch's outputs without synchronising with
the host per batch and turns them into metrics at the end.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from training import sampling
from training.config import TrainConfig
from training.distributed import DistContext


@dataclass(frozen=True, eq=False)
class Batch:
    """One batch on the training device.

    Args:
        inputs: Raw cached inputs (int16 HU), shape per task.
        labels: Class labels ``(N,)`` int64, or masks ``(N, rows, cols)`` bool.
    """

    inputs: torch.Tensor
    labels: torch.Tensor

    @property
    def size(self) -> int:
        """Samples in the batch."""
        return int(self.inputs.shape[0])


@dataclass(frozen=True, eq=False)
class StepOutput:
    """What one forward pass produced.

    Args:
        losses: ``(N,)`` float32 per-sample losses (the step averages them).
        predictions: Positive-class probabilities ``(N,)`` or ``(N, 1, rows, cols)``.
        labels: The labels the predictions are scored against (after any
            augmentation), ``(N,)`` int64 or ``(N, 1, rows, cols)`` bool.
        inputs: The model's input, kept for TensorBoard images.
    """

    losses: torch.Tensor
    predictions: torch.Tensor
    labels: torch.Tensor
    inputs: torch.Tensor | None = None


class Tracker(ABC):
    """Accumulates one phase of one epoch."""

    @abstractmethod
    def add(self, output: StepOutput) -> None:
        """Record one batch (on the device, no host synchronisation)."""

    @abstractmethod
    def finish(self, context: DistContext) -> dict[str, float]:
        """The epoch's metrics, reduced over all ranks (call on every rank)."""

    def write_tensorboard(self, writer: Any, step: int) -> None:
        """Add histograms, figures or images beyond the scalar metrics (rank 0)."""


class Task(ABC):
    """One model kind's data, model and loss.

    Args:
        config: The run's settings.
        context: This process's place in the run.
        device: The training device.
    """

    kind: str = ""
    #: Memory layout of the model and its inputs when ``config.channels_last`` is on.
    channels_last_format: torch.memory_format = torch.channels_last

    def __init__(self, config: TrainConfig, context: DistContext, device: torch.device) -> None:
        self.config = config
        self.context = context
        self.device = device

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout the model and its inputs use in this run."""
        return self.channels_last_format if self.config.channels_last else torch.contiguous_format

    # --- model ----------------------------------------------------------------
    @abstractmethod
    def model_args(self) -> dict[str, Any]:
        """Constructor arguments of the model (stored in checkpoints)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (on the CPU)."""

    def prepare_model(self, model: nn.Module, load_weights: bool) -> dict[str, Any]:
        """Freeze layers and, with ``load_weights``, load starting weights (fine-tuning).

        Args:
            model: The freshly built model.
            load_weights: False when resuming (the run's own checkpoint follows).

        Returns:
            Facts for the checkpoint metadata (e.g. the fine-tuning source).
        """
        return {}

    def set_train_mode(self, model: nn.Module) -> None:
        """Put the model in training mode (frozen parts may stay in eval mode)."""
        model.train()

    # --- data -----------------------------------------------------------------
    @abstractmethod
    def train_samples(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's training rows and labels, all ranks together."""

    @abstractmethod
    def gather(self, rows: np.ndarray, labels: np.ndarray) -> Batch:
        """Fetch a training batch from the cache onto the device."""

    @abstractmethod
    def val_batches(self) -> Iterator[Batch]:
        """This rank's validation batches."""

    @abstractmethod
    def val_size(self) -> int:
        """Validation samples of this rank."""

    def val_batch_count(self) -> int:
        """Validation batches of this rank (for progress reports)."""
        return math.ceil(self.val_size() / self.config.val_batch_size)

    def train_batches(self, epoch: int) -> tuple[int, Iterator[Batch]]:
        """This rank's training batches of one epoch.

        Returns:
            ``(samples of this rank, iterator of batches)``; every rank gets the
            same number of equally sized batches.
        """
        rows, labels = self.train_samples(epoch)
        share = sampling.shard(len(rows), self.context.rank, self.context.world_size, equal=True)
        rows, labels = rows[share], labels[share]
        batches = sampling.batch_slices(len(rows), self.config.batch_size)
        return len(rows), self._feed(rows, labels, batches)

    def _feed(self, rows: np.ndarray, labels: np.ndarray, batches: list[slice]) -> Iterator[Batch]:
        for part in batches:
            yield self.gather(rows[part], labels[part])

    # --- computation ----------------------------------------------------------
    @abstractmethod
    def step(self, model: nn.Module, batch: Batch, training: bool, generator: torch.Generator) -> StepOutput:
        """Forward one batch (augmenting it when training) and compute per-sample losses."""

    @abstractmethod
    def new_tracker(self, training: bool) -> Tracker:
        """An empty accumulator for one phase."""
