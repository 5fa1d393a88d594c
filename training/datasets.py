"""Training and validation samples of the classifiers, read from the crop cache.

:class:`ClassificationData` indexes every candidate crop of the training and
validation series (the split is by series, SPEC §1.2) and turns epochs into
cache rows and labels: the nodule classifier's balanced interleave and the
malignancy fine-tune's benign/malignant/negative interleave (SPEC §3).
Validation is never balanced. The segmentation counterpart lives in
:mod:`training.segmentation_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from engine.errors import DatasetError
from training import sampling
from training.cache import ShardCache
from training.prepcache import CLASSIFIER, fill_cache, plan_shards
from training.stores import RowStore, choose_residency

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True, eq=False)
class CandidateTable:
    """Per-candidate facts, aligned with the rows of the crop store.

    Args:
        is_nodule: ``(N,)`` bool.
        is_malignant: ``(N,)`` bool (False for non-nodules).
        diameter_mm: ``(N,)`` float32, 0 for non-nodules.
        series: ``(N,)`` int32 index into ``uids``.
        is_train: ``(N,)`` bool, True for training series, False for validation.
        uids: Series uids, sorted.
    """

    is_nodule: np.ndarray
    is_malignant: np.ndarray
    diameter_mm: np.ndarray
    series: np.ndarray
    is_train: np.ndarray
    uids: tuple[str, ...]


class ClassificationData:
    """Candidate crops of the training and validation series, ready to sample.

    Use :meth:`build`. Attributes:
        crops: :class:`RowStore` of ``(32, 48, 48)`` int16 HU crops.
        table: The :class:`CandidateTable` of those rows.
    """

    def __init__(self, crops: RowStore, table: CandidateTable) -> None:
        self.crops = crops
        self.table = table

    @classmethod
    def build(
        cls,
        index: Any,
        train_uids: tuple[str, ...],
        val_uids: tuple[str, ...],
        cache: ShardCache,
        device: torch.device,
        residency: str = "auto",
        num_workers: int = 0,
        progress: ProgressFn | None = None,
        fill: bool = True,
    ) -> "ClassificationData":
        """Fill missing cache shards, then index the cached crops.

        Args:
            index: The dataset's :class:`engine.luna.LunaIndex`.
            train_uids: Training series.
            val_uids: Validation series (disjoint from ``train_uids``).
            cache: The crop cache.
            device: The training device.
            residency: Where the crops are kept (see :func:`choose_residency`).
            num_workers: Processes building missing shards.
            progress: ``progress(done, total, uid)`` while shards are built.
            fill: Build missing shards (False: they must exist already).

        Raises:
            DatasetError: no candidates in the training series.
        """
        if set(train_uids) & set(val_uids):
            raise ValueError("training and validation series overlap")
        uids = tuple(sorted(set(train_uids) | set(val_uids)))
        requests = plan_shards(index, CLASSIFIER, uids)
        if fill:
            fill_cache(cache, requests, num_workers, progress)
        parts, nodule, malignant, diameter, series = [], [], [], [], []
        by_series: dict[str, list] = {}
        for candidate in index.candidates_in(uids):
            by_series.setdefault(candidate.series_uid, []).append(candidate)
        for number, request in enumerate(requests):
            arrays, _ = cache.load(CLASSIFIER, request.uid, request.key)
            candidates = by_series.get(request.uid, [])
            if len(arrays["crops"]) != len(candidates):
                raise DatasetError(f"crop cache shard of series {request.uid} does not match the candidate list", cache.root)
            if not candidates:
                continue
            parts.append(arrays["crops"])
            nodule.append(np.array([c.is_nodule for c in candidates], dtype=bool))
            malignant.append(np.array([c.is_nodule and c.is_malignant for c in candidates], dtype=bool))
            diameter.append(np.array([c.diameter_mm for c in candidates], dtype=np.float32))
            series.append(np.full(len(candidates), number, dtype=np.int32))
        if not parts:
            raise DatasetError("the training and validation series have no candidates", index.root)
        series_all = np.concatenate(series)
        train_set = {i for i, uid in enumerate(uids) if uid in set(train_uids)}
        table = CandidateTable(
            is_nodule=np.concatenate(nodule),
            is_malignant=np.concatenate(malignant),
            diameter_mm=np.concatenate(diameter),
            series=series_all,
            is_train=np.isin(series_all, list(train_set)),
            uids=uids,
        )
        nbytes = sum(int(p.nbytes) for p in parts)
        return cls(RowStore(parts, choose_residency(nbytes, device, residency), device), table)

    # --- the nodule classifier ------------------------------------------------
    def _rows(self, train: bool, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask & (self.table.is_train == train))

    def nodule_epoch(self, epoch: int, seed: int, ratio: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Training rows and labels (1 = nodule) of one epoch.

        Args:
            epoch: 1-based epoch (with ``seed``, fixes the shuffle).
            seed: The run's seed.
            ratio: Negatives per positive; 0 = natural order (shuffled, repeated to ``length``).
            length: Samples in the epoch.

        Raises:
            DatasetError: balanced sampling without a positive or a negative.
        """
        rng = sampling.epoch_rng(seed, epoch)
        t = self.table
        if ratio == 0:
            rows = self._rows(True, np.ones_like(t.is_nodule))
            return sampling.natural_epoch(rows, t.is_nodule[rows], length, rng)
        positives, negatives = self._rows(True, t.is_nodule), self._rows(True, ~t.is_nodule)
        if len(positives) == 0 or len(negatives) == 0:
            raise DatasetError(
                f"balanced sampling needs nodules and non-nodules in the training series "
                f"(found {len(positives)} and {len(negatives)})"
            )
        return sampling.balanced_epoch(positives, negatives, ratio, length, rng)

    def nodule_validation(self) -> tuple[np.ndarray, np.ndarray]:
        """Every validation candidate (rows, labels 1 = nodule), in cache order."""
        rows = self._rows(False, np.ones_like(self.table.is_nodule))
        return rows, self.table.is_nodule[rows].astype(np.int64)

    # --- the malignancy model -----------------------------------------------
    def malignancy_epoch(self, epoch: int, seed: int, ratio: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Training rows and labels (1 = malignant) of one epoch.

        With ``ratio > 0`` the book's interleave of malignant nodules, benign
        nodules and non-nodule candidates; with 0 the nodules in shuffled order.

        Raises:
            DatasetError: no malignant or no benign nodule in the training series.
        """
        rng = sampling.epoch_rng(seed, epoch)
        t = self.table
        malignant = self._rows(True, t.is_nodule & t.is_malignant)
        benign = self._rows(True, t.is_nodule & ~t.is_malignant)
        if len(malignant) == 0 or len(benign) == 0:
            raise DatasetError(
                f"malignancy training needs malignant and benign nodules in the training series "
                f"(found {len(malignant)} and {len(benign)})"
            )
        if ratio == 0:
            rows = np.concatenate([malignant, benign])
            return sampling.natural_epoch(rows, t.is_malignant[rows], length, rng)
        return sampling.malignancy_epoch(malignant, benign, self._rows(True, ~t.is_nodule), length, rng)

    def malignancy_validation(self) -> tuple[np.ndarray, np.ndarray]:
        """Every validation nodule (rows, labels 1 = malignant)."""
        rows = self._rows(False, self.table.is_nodule)
        return rows, self.table.is_malignant[rows].astype(np.int64)
