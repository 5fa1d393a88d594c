"""Training and validation samples of the segmentation U-Net, read from the crop cache (SPEC §3).

Training samples are ``(7, 96, 96)`` context crops centred on the annotated
nodules of the training series, with the centre slice of the ground-truth
mask as label — at the nodule's centre slice (the book), or with
``nodule_slices="all"`` at any slice of the nodule that shows mask (each
nodule still drawn equally often, then one of its slices at random; a model
trained on centre slices only learns to flag a nodule on one slice, which the
grouping's erosion then removes); the random ``64 × 64`` window and the augmentation are cut on
the training device (:mod:`training.augmentation`). With ``ratio > 0`` that
many crops centred on non-nodule candidates (vessels, pleura, airway walls —
the tissue a nodule-centred crop rarely shows) are interleaved per nodule
crop, as the classifier's balanced sampling does; ``ratio = 0`` is the
book's recipe (nodule crops only). Validation samples are the
whole slices of the validation series that hold mask voxels, with their seven
context channels (edge slices repeated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from engine.errors import DatasetError
from training import sampling
from training.cache import ShardCache
from training.prepcache import SEGMENTATION, SEGMENTATION_PARAMS, fill_cache, plan_shards
from training.stores import RowStore, choose_residency

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True, eq=False)
class ValidationSeries:
    """The cached slices of one validation series.

    Args:
        uid: Series uid.
        slab: ``(S, rows, cols)`` int16 HU of every slice any sample needs.
        slab_index: ``(S,)`` slice numbers of ``slab``, ascending.
        mask_index: ``(M,)`` slice numbers holding mask voxels.
        mask_slices: ``(M, rows, cols)`` bool masks of those slices.
        depth: Slices in the whole series.
    """

    uid: str
    slab: np.ndarray
    slab_index: np.ndarray
    mask_index: np.ndarray
    mask_slices: np.ndarray
    depth: int

    def inputs(self, samples: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
        """Context stacks and labels of some of its mask slices.

        Args:
            samples: ``(B,)`` positions in ``mask_index``.
            context: Neighbours on each side (3).

        Returns:
            ``(image (B, 2·context+1, rows, cols) int16, label (B, rows, cols) bool)``.
        """
        from engine.crops import context_indices

        needed = context_indices(self.mask_index[samples], self.depth, context)
        return self.slab[np.searchsorted(self.slab_index, needed)], self.mask_slices[samples]


class SegmentationData:
    """Nodule crops of the training series and mask slices of the validation series.

    Use :meth:`build`. Attributes:
        crops: :class:`RowStore` of ``(7, 96, 96)`` int16 HU training crops.
        labels: :class:`RowStore` of ``(96, 96)`` bool centre-slice masks.
        is_nodule: ``(len(crops),)`` bool, True for nodule-centred crops (the
            others are centred on non-nodule candidates).
        nodule_group: ``(len(crops),)`` int64, the nodule a nodule crop shows
            (unique over the dataset), -1 for the others.
        slice_offset: ``(len(crops),)`` int64, the crop's slice minus the
            nodule's centre slice (0 for centre and candidate crops).
        validation: One :class:`ValidationSeries` per validation series with mask.
    """

    def __init__(
        self,
        crops: RowStore,
        labels: RowStore,
        validation: list[ValidationSeries],
        is_nodule: np.ndarray | None = None,
        nodule_group: np.ndarray | None = None,
        slice_offset: np.ndarray | None = None,
    ) -> None:
        self.crops = crops
        self.labels = labels
        self.is_nodule = np.ones(len(crops), bool) if is_nodule is None else np.asarray(is_nodule, bool)
        rows = np.arange(len(crops), dtype=np.int64)
        self.nodule_group = np.where(self.is_nodule, rows, -1) if nodule_group is None else np.asarray(nodule_group, np.int64)
        self.slice_offset = np.zeros(len(crops), np.int64) if slice_offset is None else np.asarray(slice_offset, np.int64)
        self.validation = validation
        self.context = int(SEGMENTATION_PARAMS["context"])
        # the rows of every nodule's slices, grouped: _group_rows[_group_start[g] : + _group_count[g]]
        nodule_rows = np.flatnonzero(self.is_nodule)
        order = np.argsort(self.nodule_group[nodule_rows], kind="stable")
        self._group_rows = nodule_rows[order]
        self._groups, self._group_start, self._group_count = np.unique(
            self.nodule_group[self._group_rows], return_index=True, return_counts=True
        )

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
    ) -> "SegmentationData":
        """Fill missing cache shards, then index the cached crops and slices.

        Raises:
            DatasetError: the training series hold no annotated nodule.
        """
        if set(train_uids) & set(val_uids):
            raise ValueError("training and validation series overlap")
        train_requests = plan_shards(index, SEGMENTATION, sorted(train_uids))
        val_requests = plan_shards(index, SEGMENTATION, sorted(val_uids))
        if fill:
            fill_cache(cache, train_requests + val_requests, num_workers, progress)
        crops, labels, flags, groups, offsets = [], [], [], [], []
        next_group = 0
        for request in train_requests:
            arrays, _ = cache.load(SEGMENTATION, request.uid, request.key)
            if len(arrays["crops"]):
                crops.append(arrays["crops"])
                labels.append(arrays["labels"])
                flags.append(np.asarray(arrays["is_nodule"]))
                number = np.asarray(arrays["nodule_number"], np.int64)
                groups.append(np.where(number >= 0, number + next_group, -1))
                next_group += int(number.max(initial=-1)) + 1
                offsets.append(np.asarray(arrays["slice_offset"], np.int64))
        if not flags or not np.concatenate(flags).any():
            raise DatasetError("the training series hold no annotated nodule to train segmentation on", index.root)
        validation = []
        for request in val_requests:
            arrays, meta = cache.load(SEGMENTATION, request.uid, request.key)
            if len(arrays["mask_index"]):
                validation.append(
                    ValidationSeries(
                        uid=request.uid,
                        slab=np.asarray(arrays["slab"]),
                        slab_index=np.asarray(arrays["slab_index"]),
                        mask_index=np.asarray(arrays["mask_index"]),
                        mask_slices=np.asarray(arrays["mask_slices"]),
                        depth=int(meta["shape_irc"][0]),
                    )
                )
        nbytes = sum(int(c.nbytes) + int(lab.nbytes) for c, lab in zip(crops, labels))
        where = choose_residency(nbytes, device, residency)
        return cls(
            RowStore(crops, where, device),
            RowStore(labels, where, device),
            validation,
            np.concatenate(flags),
            np.concatenate(groups),
            np.concatenate(offsets),
        )

    def train_epoch(self, epoch: int, seed: int, length: int, ratio: int = 0, nodule_slices: str = "centre") -> np.ndarray:
        """Training crop rows of one epoch.

        Args:
            epoch: 1-based epoch (with ``seed``, fixes the shuffle).
            seed: The run's seed.
            length: Samples in the epoch.
            ratio: Candidate-centred crops per nodule crop (balanced
                interleave); 0 = nodule crops only, shuffled and repeated.
            nodule_slices: ``"centre"`` (the book: each nodule's centre slice)
                or ``"all"`` (each nodule as often, at a random one of its
                slices that show mask).

        Raises:
            DatasetError: ``ratio > 0`` but the cache holds no candidate crops
                (the dataset has no ``candidates.csv``).
        """
        if nodule_slices not in ("centre", "all"):
            raise ValueError(f"nodule_slices must be 'centre' or 'all', not {nodule_slices!r}")
        rng = sampling.epoch_rng(seed, epoch)
        nodules = np.flatnonzero(self.is_nodule & (self.slice_offset == 0))
        negatives = np.flatnonzero(~self.is_nodule)
        if ratio == 0:
            rows = sampling.natural_epoch(nodules, np.ones_like(nodules), length, rng)[0]
        elif len(negatives) == 0:
            raise DatasetError("--ratio > 0 needs non-nodule candidates (candidates.csv) for segmentation")
        else:
            rows = sampling.balanced_epoch(nodules, negatives, ratio, length, rng)[0]
        if nodule_slices == "all":
            rows = self._any_slice(rows, sampling.epoch_rng(seed, epoch, stream=3))
        return rows

    def _any_slice(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``rows`` with every nodule crop replaced by a random crop of the same nodule (any of its slices)."""
        rows = np.array(rows, dtype=np.int64)
        chosen = np.flatnonzero(self.is_nodule[rows])
        slot = np.searchsorted(self._groups, self.nodule_group[rows[chosen]])
        pick = self._group_start[slot] + (rng.random(len(chosen)) * self._group_count[slot]).astype(np.int64)
        rows[chosen] = self._group_rows[pick]
        return rows

    def validation_samples(self) -> np.ndarray:
        """Every validation slice as ``(series position, mask-slice position)`` rows, ``(V, 2)`` int64."""
        pairs = [
            np.stack([np.full(len(s.mask_index), i), np.arange(len(s.mask_index))], axis=1)
            for i, s in enumerate(self.validation)
        ]
        return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)

    def validation_batches(self, samples: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Validation inputs in batches; a batch never mixes series (their slice sizes may differ).

        Args:
            samples: Rows of :meth:`validation_samples` (e.g. this rank's share).
            batch_size: Largest batch.

        Yields:
            ``(image (B, 7, rows, cols) int16, label (B, rows, cols) bool)``.
        """
        for series in np.unique(samples[:, 0]) if len(samples) else []:
            positions = samples[samples[:, 0] == series, 1]
            for part in sampling.batch_slices(len(positions), batch_size):
                yield self.validation[int(series)].inputs(positions[part], self.context)
