"""Reading cached batches in DataLoader worker processes (``--num-workers``).

Used when the cache stays in host memory or on disk: workers gather whole
batches of rows (one item = one batch) while the device trains on the
previous ones. A device-resident cache needs no workers.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ReadFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class BatchReader(Dataset):
    """Item ``i`` = the arrays of batch ``i``.

    Args:
        read: ``read(rows, labels) -> (inputs, labels)`` numpy arrays.
        rows: ``(L,)`` cache rows of the epoch (this rank's share).
        labels: ``(L,)`` labels aligned with ``rows``.
        batches: Slices of ``rows`` forming the batches.
    """

    def __init__(self, read: ReadFn, rows: np.ndarray, labels: np.ndarray, batches: list[slice]) -> None:
        self.read = read
        self.rows = rows
        self.labels = labels
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        part = self.batches[item]
        inputs, labels = self.read(self.rows[part], self.labels[part])
        return torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(np.ascontiguousarray(labels))


def prefetched(
    read: ReadFn,
    rows: np.ndarray,
    labels: np.ndarray,
    batches: list[slice],
    num_workers: int,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches read by ``num_workers`` processes, moved to ``device`` in order.

    Args:
        read: See :class:`BatchReader`.
        rows: The epoch's rows.
        labels: Their labels.
        batches: Batch slices.
        num_workers: Worker processes (≥ 1).
        device: The training device.
    """
    loader = DataLoader(
        BatchReader(read, rows, labels, batches),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4,
    )
    for inputs, batch_labels in loader:
        yield inputs.to(device, non_blocking=True), batch_labels.to(device, non_blocking=True)
