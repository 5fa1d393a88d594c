"""The one training loop all three trainers share.

Per epoch, in this order: train (forward → backward → step per batch, stop
check after each batch) → validate when due → checkpoint (``last``, and
``best`` when the validation score improved) → log → stop check. A stop
request ends the epoch after the current batch; the checkpoint then records
the epoch as unfinished, so ``--resume`` repeats it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import DeviceError
from training.config import TrainConfig
from training.distributed import DistContext, any_rank
from training.events import EventLog, format_metrics_line
from engine.files import copy_file_atomic
from engine.run_layout import RunLayout
from training.runs import LoopState, save_run_checkpoint
from training.stopping import StopRequest
from training.task import Task

#: In a distributed run, ranks agree on stopping every this many batches.
DISTRIBUTED_STOP_CHECK = 8


@dataclass(frozen=True)
class Precision:
    """Mixed-precision settings of training.

    Args:
        dtype: Autocast type, or ``None`` for float32.
        device_type: ``"cuda"``, ``"cpu"``, ...
    """

    dtype: torch.dtype | None
    device_type: str

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    @property
    def needs_scaler(self) -> bool:
        """float16 gradients need loss scaling; bfloat16 ones do not."""
        return self.dtype == torch.float16

    def autocast(self) -> Any:
        if self.dtype is None:
            return torch.autocast(device_type=self.device_type, enabled=False)
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def training_precision(device: torch.device, requested: str) -> Precision:
    """Resolve ``--precision`` for a device.

    ``auto``: bfloat16 on CUDA where supported, else float16; float32 elsewhere.

    Raises:
        DeviceError: float16 requested off CUDA.
    """
    if requested == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = None
    elif requested == "float32":
        dtype = None
    elif requested == "bfloat16":
        dtype = torch.bfloat16
    else:
        if device.type != "cuda":
            raise DeviceError("float16 training needs a CUDA device; use --precision bfloat16 or float32")
        dtype = torch.float16
    return Precision(dtype, device.type)


def build_optimizer(config: TrainConfig, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (lr, momentum, weight decay) or Adam (lr, weight decay) over the trainable parameters."""
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class TrainingLoop:
    """Runs epochs of a :class:`Task` and records everything.

    Args:
        task: The model kind's data, model and loss.
        model: The model on the device (DDP-wrapped in a distributed run).
        model_args: Its constructor arguments (for checkpoints).
        optimizer: Over the trainable parameters.
        config: The run's settings.
        paths: The run folder.
        events: The event stream (disabled on ranks other than 0).
        writers: TensorBoard writers per phase (empty on other ranks).
        context: This process's place in the run.
        device: The training device.
        precision: Mixed-precision settings.
        stop: Stop requests.
        state: Where the run stands (fresh or resumed).
        extra_metadata: Stored in every checkpoint (fine-tuning source, ...).
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        model_args: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        paths: RunLayout,
        events: EventLog,
        writers: dict[str, Any],
        context: DistContext,
        device: torch.device,
        precision: Precision,
        stop: StopRequest,
        state: LoopState,
        extra_metadata: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.model = model
        self.model_args = model_args
        self.optimizer = optimizer
        self.config = config
        self.paths = paths
        self.events = events
        self.writers = writers
        self.context = context
        self.device = device
        self.precision = precision
        self.stop = stop
        self.state = state
        self.extra_metadata = dict(extra_metadata or {})
        self.scaler = torch.amp.GradScaler(device.type) if precision.needs_scaler else None
        self.current_epoch: int | None = None

    # --- the loop -------------------------------------------------------------
    def run(self) -> str:
        """Train from the epoch after ``state.epoch`` to ``config.epochs``.

        Returns:
            ``"completed"`` or ``"stopped"``.
        """
        for epoch in range(self.state.epoch + 1, self.config.epochs + 1):
            self.current_epoch = epoch
            train_metrics, complete = self.train_epoch(epoch)
            self.log_epoch(epoch, "train", train_metrics, partial=not complete)
            val_metrics = self.evaluate(epoch) if complete and self.due_for_validation(epoch) else None
            if val_metrics is not None:
                self.log_epoch(epoch, "val", val_metrics)
            self.checkpoint(epoch, complete, train_metrics, val_metrics)
            if not complete or self.stop_agreed():
                return "stopped"
        return "completed"

    def due_for_validation(self, epoch: int) -> bool:
        """Epoch 1, every ``validation_cadence``-th epoch, and the last one."""
        cadence = self.config.validation_cadence
        return epoch == 1 or epoch % cadence == 0 or epoch == self.config.epochs

    def stop_agreed(self) -> bool:
        """Whether any rank was asked to stop (all ranks get the same answer)."""
        return any_rank(self.stop.requested(), self.context, self.device)

    def _generator(self, epoch: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed((self.config.seed * 1_000_003 + epoch) * 1_009 + self.context.rank)
        return generator

    # --- phases ---------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[dict[str, float], bool]:
        """One training epoch; returns its metrics and whether it ran to the end."""
        self.task.set_train_mode(self.model)
        generator = self._generator(epoch)
        tracker = self.task.new_tracker(training=True)
        samples, batches = self.task.train_batches(epoch)
        world = self.context.world_size
        total_batches = math.ceil(samples / self.config.batch_size)
        done, started, complete = 0, time.perf_counter(), True
        for number, batch in enumerate(batches, start=1):
            with self.precision.autocast():
                output = self.task.step(self.model, batch, True, generator)
            loss = output.losses.mean()
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            tracker.add(output)
            done += batch.size
            self._progress(epoch, "train", number, total_batches, done * world, samples * world, started)
            if number < total_batches and self._stop_now(number):
                complete = False
                break
        metrics = tracker.finish(self.context)
        self.state.samples_seen += done * world
        metrics["samples_per_s"] = done * world / max(time.perf_counter() - started, 1e-9)
        if self.context.is_main and "train" in self.writers:
            tracker.write_tensorboard(self.writers["train"], self.state.samples_seen)
        return metrics, complete

    def _stop_now(self, batch_number: int) -> bool:
        if not self.context.distributed:
            return self.stop.requested()
        if batch_number % DISTRIBUTED_STOP_CHECK:
            return False
        return self.stop_agreed()

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Validation metrics (all ranks reduced); runs the unwrapped model in eval mode."""
        model = unwrap(self.model)
        model.eval()
        tracker = self.task.new_tracker(training=False)
        generator = self._generator(epoch)
        samples = self.task.val_size()
        total_batches = self.task.val_batch_count()
        done, started = 0, time.perf_counter()
        with torch.inference_mode():
            for number, batch in enumerate(self.task.val_batches(), start=1):
                with self.precision.autocast():
                    output = self.task.step(model, batch, False, generator)
                tracker.add(output)
                done += batch.size
                self._progress(epoch, "val", number, total_batches, done, samples, started)
        metrics = tracker.finish(self.context)
        metrics["samples_per_s"] = int(metrics.get("samples", done)) / max(time.perf_counter() - started, 1e-9)
        if self.context.is_main and "val" in self.writers:
            tracker.write_tensorboard(self.writers["val"], self.state.samples_seen)
        return metrics

    def _progress(
        self, epoch: int, phase: str, batch: int, batches: int, done: int, total: int, started: float
    ) -> None:
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        self.events.progress(
            force=batch == batches,
            epoch=epoch,
            epochs=self.config.epochs,
            phase=phase,
            batch=batch,
            batches=batches,
            samples=done,
            samples_total=total,
            fraction=done / total if total else 1.0,
            elapsed_s=round(elapsed, 3),
            eta_s=round((total - done) / rate, 3) if rate > 0 else None,
            samples_per_s=round(rate, 2),
        )

    # --- records --------------------------------------------------------------
    def log_epoch(self, epoch: int, phase: str, metrics: dict[str, float], partial: bool = False) -> None:
        """The epoch's JSON event, its human-readable line and its TensorBoard scalars."""
        self.events.emit(
            "epoch",
            epoch=epoch,
            epochs=self.config.epochs,
            phase=phase,
            partial=partial,
            samples_seen=self.state.samples_seen,
            metrics=metrics,
        )
        self.events.say(format_metrics_line(self.config.kind, epoch, phase, metrics) + (" (stopped early)" if partial else ""))
        if self.context.is_main and phase in self.writers:
            from training.tensorboard_log import write_scalars

            write_scalars(self.writers[phase], metrics, self.state.samples_seen)
            self.writers[phase].flush()

    def checkpoint(
        self, epoch: int, complete: bool, train_metrics: dict[str, float], val_metrics: dict[str, float] | None
    ) -> None:
        """Update the loop state and write ``last.pt`` (and ``best.pt`` when the score improved)."""
        state = self.state
        state.epoch = epoch if complete else epoch - 1
        state.last_metrics = {"epoch": epoch, "train": train_metrics, "val": val_metrics}
        improved = False
        if val_metrics is not None:
            score = float(val_metrics.get(self.config.best_metric, 0.0))
            if score > state.best_score:
                state.best_score, state.best_epoch, state.best_metrics = score, epoch, dict(val_metrics)
                improved = True
        if not self.context.is_main:
            return
        metadata = {
            **self.extra_metadata,
            "kind": self.config.kind,
            "run": self.config.run_name,
            "epoch": state.epoch,
            "partial_epoch": None if complete else epoch,
            "samples_seen": state.samples_seen,
            "best_metric": self.config.best_metric,
            "loop_state": state.to_metadata(),
            "config": self.config.to_dict(),
            "torch_version": str(torch.__version__),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        model = unwrap(self.model)
        sha = save_run_checkpoint(self.paths.last, model, self.config.kind, self.model_args, metadata, self.optimizer)
        self.events.emit("checkpoint", epoch=epoch, which="last", path=str(self.paths.last), sha256=sha, complete=complete)
        if improved:
            copy_file_atomic(self.paths.last, self.paths.best)
            self.events.emit(
                "checkpoint",
                epoch=epoch,
                which="best",
                path=str(self.paths.best),
                sha256=sha,
                metric=self.config.best_metric,
                score=state.best_score,
            )
            from training.model_card import write_run_card

            write_run_card(self.paths, self.config, state, sha, self.extra_metadata)
