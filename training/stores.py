"""Cached rows held where training reads them fastest: on the device, in memory, or on disk.

A :class:`RowStore` concatenates one array of every series' shard (e.g. all
classifier crops) and hands out batches of rows as tensors on the training
device. ``device`` residency keeps the whole array on the GPU, so a batch is
one indexed gather there; ``memory`` keeps it in RAM (pinned copies go to the
GPU); ``disk`` reads rows from the memory-mapped shards (with DataLoader
workers doing the reading). ``auto`` picks the fastest that fits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

RESIDENCY_CHOICES = ("auto", "device", "memory", "disk")


def available_ram_bytes() -> int | None:
    """Free physical memory (Linux/macOS), or ``None`` when unknown."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_residency(nbytes: int, device: torch.device, requested: str = "auto") -> str:
    """Where to keep ``nbytes`` of cached rows.

    Args:
        nbytes: Size of the arrays.
        device: The training device.
        requested: One of :data:`RESIDENCY_CHOICES`; anything but ``auto`` is kept
            (``device`` on a CPU device means ``memory``).

    Returns:
        ``"device"``, ``"memory"`` or ``"disk"``.
    """
    if requested not in RESIDENCY_CHOICES:
        raise ValueError(f"unknown cache residency {requested!r}; use one of {', '.join(RESIDENCY_CHOICES)}")
    if requested != "auto":
        return "memory" if requested == "device" and device.type == "cpu" else requested
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes < 0.5 * free:
            return "device"
    ram = available_ram_bytes()
    if ram is None or nbytes < 0.5 * ram:
        return "memory"
    return "disk"


class RowStore:
    """Rows ``0..N-1`` of one array kind, across per-series parts.

    Args:
        parts: One array per series (memory-mapped shard arrays), same row
            shape and dtype; global row numbers run through them in order.
        residency: ``"device"``, ``"memory"`` or ``"disk"`` (see :func:`choose_residency`).
        device: The training device.
    """

    def __init__(self, parts: Sequence[np.ndarray], residency: str, device: torch.device) -> None:
        if not parts:
            raise ValueError("a RowStore needs at least one part")
        self.row_shape = tuple(parts[0].shape[1:])
        self.dtype = parts[0].dtype
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.residency = residency
        self.device = device
        self._paths = [getattr(p, "filename", None) for p in parts]
        self._parts: list[np.ndarray] | None = list(parts)
        self._array: np.ndarray | None = None
        self._tensor: torch.Tensor | None = None
        if residency in ("device", "memory"):
            array = np.concatenate([np.asarray(p) for p in parts]) if len(parts) > 1 else np.array(parts[0])
            if residency == "device":
                self._tensor = torch.from_numpy(_torch_friendly(array)).to(device)
            else:
                self._array = array
            self._parts = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        """Size of all rows in bytes."""
        return len(self) * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.residency == "disk" and all(self._paths):
            state["_parts"] = None  # reopened lazily in a worker process, not pickled
        if self._tensor is not None:
            raise TypeError("a device-resident RowStore cannot be sent to worker processes")
        return state

    def _disk_parts(self) -> list[np.ndarray]:
        if self._parts is None:
            self._parts = [np.load(Path(p), mmap_mode="r", allow_pickle=False) for p in self._paths]
        return self._parts

    def gather_numpy(self, rows: np.ndarray) -> np.ndarray:
        """Rows as a numpy array ``(len(rows), *row_shape)`` (memory or disk residency)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._array is not None:
            return self._array[rows]
        if self._tensor is not None:
            return self._tensor[torch.from_numpy(rows).to(self.device)].cpu().numpy()
        parts = self._disk_parts()
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for part in np.unique(which):
            selected = np.flatnonzero(which == part)
            local = rows[selected] - self.offsets[part]
            order = np.argsort(local, kind="stable")  # sequential reads from the memory map
            out[selected[order]] = parts[part][local[order]]
        return out

    def gather(self, rows: np.ndarray) -> torch.Tensor:
        """Rows as a tensor on the training device."""
        if self._tensor is not None:
            index = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device, non_blocking=True)
            return self._tensor[index]
        batch = torch.from_numpy(_torch_friendly(self.gather_numpy(rows)))
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)


def _torch_friendly(array: np.ndarray) -> np.ndarray:
    """A writable array (``torch.from_numpy`` warns on read-only memory maps)."""
    if not array.flags.writeable:
        array = np.array(array)
    return array
