"""Multi-process training with PyTorch's own distributed engine (``torchrun`` + DDP).

Launched as ``torchrun --nproc_per_node N -m training ...`` every process gets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from the environment; the process
group uses NCCL on CUDA and Gloo on CPU. Without those variables the run is a
single process and every collective below is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Args:
        rank: Global rank (0 writes files and events).
        world_size: Number of processes.
        local_rank: Rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether the environment holds torchrun's rendezvous variables."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_distributed(device_type: str) -> DistContext:
    """Join the process group when launched by torchrun, else return a single-process context.

    Args:
        device_type: ``"cuda"`` (NCCL backend, device = ``LOCAL_RANK``) or
            anything else (Gloo backend).
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistContext()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank)


def shutdown(context: DistContext) -> None:
    """Leave the process group (after a final barrier)."""
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returns it)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, context: DistContext, device: torch.device) -> bool:
    """Whether ``flag`` is true on at least one rank (all ranks get the same answer)."""
    if not context.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_arrays(arrays: dict[str, np.ndarray], context: DistContext) -> dict[str, np.ndarray]:
    """Concatenate per-rank arrays in rank order (every rank gets the result).

    Args:
        arrays: Name → 1-D array of this rank's samples.
        context: The run's context.
    """
    if not context.distributed:
        return arrays
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, arrays)
    return {name: np.concatenate([part[name] for part in gathered]) for name in arrays}


def broadcast_object(value: Any, context: DistContext) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
