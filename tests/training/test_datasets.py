"""Classifier, malignancy and segmentation samples: the split never leaks, labels and masks are right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.crops import context_slices, gather_crops
from engine.io.ct import load_ct
from engine.geometry import xyz_to_irc
from engine.luna import LunaIndex
from engine.masks import mask_slice_indices, nodule_mask
from training.cache import ShardCache
from training.datasets import ClassificationData
from training.segmentation_data import SegmentationData

CPU = torch.device("cpu")


@pytest.fixture
def index(tiny_dataset) -> LunaIndex:
    return LunaIndex.open(tiny_dataset.root, require_candidates=True)


def _classification(index: LunaIndex, tmp_path: Path, residency: str = "memory") -> tuple[ClassificationData, object]:
    split = index.split(val_stride=3)
    return ClassificationData.build(index, split.train, split.val, ShardCache(tmp_path / "c"), CPU, residency), split


def test_the_split_never_leaks(index: LunaIndex, tmp_path: Path) -> None:
    data, split = _classification(index, tmp_path)
    uids = np.asarray(data.table.uids)
    for epoch in (1, 2):
        rows, _ = data.nodule_epoch(epoch, seed=3, ratio=2, length=300)
        assert set(uids[data.table.series[rows]]) <= set(split.train)
        rows, _ = data.malignancy_epoch(epoch, seed=3, ratio=1, length=100)
        assert set(uids[data.table.series[rows]]) <= set(split.train)
    rows, _ = data.nodule_validation()
    assert set(uids[data.table.series[rows]]) == set(split.val)
    assert len(rows) == len(index.candidates_in(split.val))


def test_classifier_epoch_is_balanced_and_labelled(index: LunaIndex, tmp_path: Path) -> None:
    data, _ = _classification(index, tmp_path)
    rows, labels = data.nodule_epoch(1, seed=0, ratio=3, length=400)
    assert np.array_equal(labels, data.table.is_nodule[rows])
    assert labels.tolist()[:8] == [1, 0, 0, 0, 1, 0, 0, 0]
    assert labels.sum() == 100
    natural_rows, natural_labels = data.nodule_epoch(1, seed=0, ratio=0, length=50)
    assert len(natural_rows) == 50 and np.array_equal(natural_labels, data.table.is_nodule[natural_rows])


def test_validation_is_not_balanced(index: LunaIndex, tmp_path: Path) -> None:
    data, split = _classification(index, tmp_path)
    _, labels = data.nodule_validation()
    expected = sum(c.is_nodule for c in index.candidates_in(split.val))
    assert labels.sum() == expected and labels.sum() < len(labels) / 2


def test_malignancy_samples_are_labelled_by_malignancy(index: LunaIndex, tmp_path: Path) -> None:
    data, _ = _classification(index, tmp_path)
    rows, labels = data.malignancy_epoch(1, seed=0, ratio=1, length=80)
    t = data.table
    assert np.all(t.is_malignant[rows[labels == 1]])
    assert not np.any(t.is_malignant[rows[labels == 0]])
    assert np.any(~t.is_nodule[rows[labels == 0]]) and np.any(t.is_nodule[rows[labels == 0]])
    val_rows, val_labels = data.malignancy_validation()
    assert np.all(t.is_nodule[val_rows]) and np.array_equal(val_labels, t.is_malignant[val_rows])


def test_disk_and_memory_stores_give_the_same_batches(index: LunaIndex, tmp_path: Path) -> None:
    memory, _ = _classification(index, tmp_path, "memory")
    disk, _ = _classification(index, tmp_path, "disk")
    assert disk.crops.residency == "disk" and memory.crops.residency == "memory"
    rows = np.array([5, 0, 31, 7, 7, len(memory.crops) - 1])
    assert torch.equal(memory.crops.gather(rows), disk.crops.gather(rows))


def test_segmentation_crops_and_labels_come_from_the_ground_truth_mask(index: LunaIndex, tmp_path: Path, tiny_dataset) -> None:
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    centre_crops = data.is_nodule & (data.slice_offset == 0)
    assert centre_crops.sum() == sum(len(tiny_dataset.nodules[u]) for u in split.train)
    uid = split.train[0]
    ct = load_ct(index.path_for(uid))
    centres = xyz_to_irc(ct.geometry, np.array([a.center_xyz for a in index.annotations_for(uid)]))
    mask = nodule_mask(np.asarray(ct.hu), centres)
    first_crop = np.clip(gather_crops(ct.hu, centres[:1], (7, 96, 96)), -1000, 1000)[0]
    first_label = gather_crops(mask.astype(np.int16), centres[:1], (7, 96, 96))[0, 3] > 0
    row = np.array([0])  # the first training series' first nodule is the store's first row
    assert np.array_equal(data.crops.gather(row)[0].numpy(), first_crop)
    assert np.array_equal(data.labels.gather(row)[0].numpy(), first_label)
    assert first_label.sum() > 10  # the centre slice of a 6–14 mm nodule holds mask


def test_segmentation_nodule_slice_crops_show_the_mask_of_their_slice(index: LunaIndex, tmp_path: Path) -> None:
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    uid = split.train[0]
    ct = load_ct(index.path_for(uid))
    centres = xyz_to_irc(ct.geometry, np.array([a.center_xyz for a in index.annotations_for(uid)]))
    mask = nodule_mask(np.asarray(ct.hu), centres)
    first = data.nodule_group == 0  # the first training series' first nodule
    offsets = data.slice_offset[first]
    # the tiny dataset's nodules are 6-14 mm at 2 mm slices: several slices each, contiguous around 0
    assert len(offsets) >= 3 and 0 in offsets
    assert sorted(offsets) == list(range(offsets.min(), offsets.max() + 1))
    for row, offset in zip(np.flatnonzero(first), offsets):
        moved = centres[:1] + np.array([[offset, 0, 0]])
        crop = np.clip(gather_crops(ct.hu, moved, (7, 96, 96)), -1000, 1000)[0]
        label = gather_crops(mask.astype(np.int16), moved, (7, 96, 96))[0, 3] > 0
        assert np.array_equal(data.crops.gather(np.array([row]))[0].numpy(), crop)
        assert np.array_equal(data.labels.gather(np.array([row]))[0].numpy(), label) and label.any()


def test_segmentation_all_slices_draws_each_nodule_equally_at_any_of_its_slices(index: LunaIndex, tmp_path: Path) -> None:
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    n_nodules = int((data.is_nodule & (data.slice_offset == 0)).sum())
    centre = data.train_epoch(1, seed=0, length=30, ratio=2)
    assert (data.slice_offset[centre] == 0).all()
    rows = data.train_epoch(1, seed=0, length=30, ratio=2, nodule_slices="all")
    assert data.is_nodule[rows].tolist() == [True, False, False] * 10  # the interleave is unchanged
    assert np.array_equal(rows[~data.is_nodule[rows]], centre[~data.is_nodule[centre]])
    assert np.array_equal(data.nodule_group[rows], data.nodule_group[centre])  # same nodules, other slices
    rows = data.train_epoch(2, seed=0, length=60 * n_nodules, ratio=0, nodule_slices="all")
    per_nodule = np.bincount(data.nodule_group[rows])
    assert len(per_nodule) == n_nodules and per_nodule.min() == per_nodule.max() == 60
    assert len(np.unique(data.slice_offset[rows])) >= 3
    with pytest.raises(ValueError, match="nodule_slices"):
        data.train_epoch(1, seed=0, length=4, nodule_slices="every")


def test_segmentation_validation_is_every_mask_slice_of_the_validation_series(index: LunaIndex, tmp_path: Path) -> None:
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    assert [v.uid for v in data.validation] == list(split.val)
    samples = data.validation_samples()
    seen = 0
    for series in data.validation:
        ct = load_ct(index.path_for(series.uid))
        centres = xyz_to_irc(ct.geometry, np.array([a.center_xyz for a in index.annotations_for(series.uid)]))
        mask = nodule_mask(np.asarray(ct.hu), centres)
        assert np.array_equal(series.mask_index, mask_slice_indices(mask))
        seen += len(series.mask_index)
        image, label = series.inputs(np.arange(len(series.mask_index)), context=3)
        assert np.array_equal(image, context_slices(ct.hu, series.mask_index).astype(np.int16))
        assert np.array_equal(label, mask[series.mask_index])
    assert len(samples) == seen
    batches = list(data.validation_batches(samples, batch_size=4))
    assert sum(len(b[0]) for b in batches) == seen and all(len(b[0]) <= 4 for b in batches)


def test_overlapping_splits_are_refused(index: LunaIndex, tmp_path: Path) -> None:
    uids = index.series_uids
    with pytest.raises(ValueError, match="overlap"):
        ClassificationData.build(index, uids[:3], uids[2:], ShardCache(tmp_path / "c"), CPU)


def test_segmentation_negative_crops_are_centred_on_non_nodule_candidates(index: LunaIndex, tmp_path: Path) -> None:
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    negatives = np.flatnonzero(~data.is_nodule)
    expected = sum(min(32, sum(not c.is_nodule for c in index.candidates_in([u]))) for u in split.train)
    assert len(negatives) == expected
    nodule_pixels = data.labels.gather(np.flatnonzero(data.is_nodule)).sum(dim=(1, 2))
    negative_pixels = data.labels.gather(negatives).sum(dim=(1, 2))
    assert (nodule_pixels > 0).all() and (negative_pixels == 0).float().mean() > 0.8
    rows = data.train_epoch(1, seed=0, length=30, ratio=2)
    assert data.is_nodule[rows].tolist() == [True, False, False] * 10
    assert data.is_nodule[data.train_epoch(1, seed=0, length=30, ratio=0)].all()


def test_segmentation_without_candidates_trains_on_nodules_only(tiny_dataset, tmp_path: Path) -> None:
    from engine.errors import DatasetError

    (tiny_dataset.root / "candidates.csv").unlink()
    index = LunaIndex.open(tiny_dataset.root)
    split = index.split(val_stride=3)
    data = SegmentationData.build(index, split.train, split.val, ShardCache(tmp_path / "s"), CPU, "memory")
    assert data.is_nodule.all()
    with pytest.raises(DatasetError, match="candidates"):
        data.train_epoch(1, seed=0, length=8, ratio=1)
