"""Evaluating one dataset with several processes: ``torchrun --nproc_per_node N main.py evaluate ...``.

PyTorch's launcher starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. Each rank detects on
its share of the split (every ``WORLD_SIZE``-th series from its ``RANK``) and
writes each series to the per-series cache of the shared output folder, as a
single-process evaluation does; after a barrier, rank 0 runs the ordinary
evaluation, which finds every series cached, scores them and writes the
report. A rank killed part-way leaves only whole cache files, so rerunning
the same command resumes. Without torchrun's variables everything here is a
no-op and ``evaluate`` runs as one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from engine.evaluation.dataset import (
    ClassifyAt,
    DetectorLike,
    EvaluationSettings,
    Progress,
    series_detections,
    split_series_uids,
)
from engine.luna import LunaIndex
from engine.metrics.records import group_by_series


@dataclass(frozen=True)
class Ranks:
    """This process's place among the evaluating processes.

    Args:
        rank: Global rank (0 writes the report).
        world_size: Number of processes.
        local_rank: Rank on this machine (which GPU it uses).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process evaluates."""
        return self.world_size > 1


def ranks_from_environment() -> Ranks:
    """The ranks torchrun set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Ranks()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return Ranks(rank, world, int(os.environ.get("LOCAL_RANK", rank)))


def rank_device(device: str, ranks: Ranks) -> str:
    """One GPU per rank: ``cuda`` (or ``auto`` where CUDA is present) becomes ``cuda:LOCAL_RANK``."""
    if not ranks.distributed:
        return device
    if device == "cuda" or device == "auto":
        import torch

        if torch.cuda.is_available():
            return f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
    return device


def share_of(uids: tuple[str, ...], ranks: Ranks) -> tuple[str, ...]:
    """The series of this rank: every ``world_size``-th from ``rank`` (all of them for one process)."""
    return uids[ranks.rank :: ranks.world_size]


def detect_share(
    index: LunaIndex,
    detector: DetectorLike,
    out_dir: str | Path,
    settings: EvaluationSettings,
    ranks: Ranks,
    *,
    detector_id: str = "",
    classify_at: ClassifyAt | None = None,
    progress: Progress | None = None,
) -> int:
    """Detect on this rank's share of the split into the per-series cache (cached series are skipped).

    Returns:
        How many series this rank owns.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = share_of(split_series_uids(index, settings), ranks)
    by_series = group_by_series(index.annotations)
    at_annotation = settings.malignancy_at == "annotation" and classify_at is not None
    report = progress or (lambda fraction, text: None)
    for i, uid in enumerate(mine):
        series_detections(
            index, uid, by_series.get(uid, []), detector, out_dir, detector_id, at_annotation, classify_at,
            lambda f, text, i=i: report((i + min(max(f, 0.0), 1.0)) / len(mine), f"rank {ranks.rank}: {i + 1}/{len(mine)} {text}"),
            None,
        )
    return len(mine)


def barrier(ranks: Ranks) -> None:
    """Wait until every rank has filled its share (a Gloo process group, joined on first use)."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        # a rank may wait for the slowest share of a big dataset: allow hours, not Gloo's 30 minutes
        dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size, timeout=timedelta(hours=24))
    dist.barrier()


def leave(ranks: Ranks) -> None:
    """Leave the process group, if one was joined."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
