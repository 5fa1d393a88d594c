"""Balanced interleaving, malignancy interleave, epoch shuffles and rank shards (SPEC §3)."""

from __future__ import annotations

import numpy as np
import pytest

from training import sampling


@pytest.mark.parametrize("ratio", [1, 2, 3, 5])
def test_balanced_positions_follow_the_spec_formula(ratio: int) -> None:
    numbers = np.arange(60)
    is_pos, position = sampling.balanced_positions(numbers, ratio)
    for n in numbers:  # the formula, written out per sample
        expected_pos = n // (ratio + 1)
        if n % (ratio + 1):
            assert not is_pos[n] and position[n] == n - 1 - expected_pos
        else:
            assert is_pos[n] and position[n] == expected_pos
    # one positive per `ratio` negatives, and both lists are walked without gaps
    assert is_pos.sum() == len(numbers) // (ratio + 1)
    assert np.array_equal(np.sort(position[is_pos]), np.arange(is_pos.sum()))
    assert np.array_equal(np.sort(position[~is_pos]), np.arange((~is_pos).sum()))


def test_balanced_epoch_wraps_both_lists_and_labels_them() -> None:
    positives, negatives = np.array([100, 101]), np.array([200, 201, 202])
    rows, labels = sampling.balanced_epoch(positives, negatives, ratio=2, length=12, rng=None)
    assert rows.tolist() == [100, 200, 201, 101, 202, 200, 100, 201, 202, 101, 200, 201]
    assert labels.tolist() == [1, 0, 0] * 4


def test_balanced_epoch_shuffles_differently_each_epoch_and_reproducibly() -> None:
    positives, negatives = np.arange(10), np.arange(100, 150)
    first = sampling.balanced_epoch(positives, negatives, 1, 40, sampling.epoch_rng(7, 1))[0]
    again = sampling.balanced_epoch(positives, negatives, 1, 40, sampling.epoch_rng(7, 1))[0]
    second = sampling.balanced_epoch(positives, negatives, 1, 40, sampling.epoch_rng(7, 2))[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, second)
    assert set(first[::2]) == set(range(10))  # every positive appears, at the even places


def test_balanced_epoch_refuses_an_empty_class() -> None:
    with pytest.raises(ValueError):
        sampling.balanced_epoch(np.array([], dtype=np.int64), np.array([1, 2]), 1, 4, None)


def test_malignancy_interleave_is_the_books() -> None:
    mal, ben, neg = np.array([10, 11]), np.array([20, 21, 22]), np.array([30, 31])
    rows, labels = sampling.malignancy_epoch(mal, ben, neg, 12, rng=None)
    expected = []
    for n in range(12):
        if n % 2 == 1:
            expected.append(mal[(n // 2) % 2])
        elif n % 4 == 0:
            expected.append(ben[(n // 4) % 3])
        else:
            expected.append(neg[(n // 4) % 2])
    assert rows.tolist() == expected
    assert labels.tolist() == [n % 2 for n in range(12)]


def test_malignancy_interleave_without_negatives_uses_benign_nodules() -> None:
    rows, _ = sampling.malignancy_epoch(np.array([1]), np.array([2, 3]), np.array([], np.int64), 8, None)
    assert set(rows.tolist()) == {1, 2, 3}


def test_natural_epoch_repeats_a_permutation_to_the_length() -> None:
    rows, labels = sampling.natural_epoch(np.arange(5), np.arange(5) % 2, 12, sampling.epoch_rng(1, 1))
    assert len(rows) == 12
    assert sorted(rows[:5].tolist()) == list(range(5))
    assert np.array_equal(labels, rows % 2)


@pytest.mark.parametrize("length,world", [(10, 2), (11, 3), (7, 4), (100, 1)])
def test_training_shards_are_equal_contiguous_and_disjoint(length: int, world: int) -> None:
    shards = [sampling.shard(length, r, world, equal=True) for r in range(world)]
    sizes = {s.stop - s.start for s in shards}
    assert sizes == {length // world}
    covered = np.concatenate([np.arange(length)[s] for s in shards])
    assert len(set(covered.tolist())) == len(covered)


@pytest.mark.parametrize("length,world", [(10, 2), (11, 3), (2, 4), (0, 2)])
def test_validation_shards_cover_every_sample_once(length: int, world: int) -> None:
    covered = np.concatenate([np.arange(length)[sampling.shard(length, r, world, equal=False)] for r in range(world)])
    assert covered.tolist() == list(range(length))


def test_contiguous_shards_keep_the_class_balance_per_rank() -> None:
    _, labels = sampling.balanced_epoch(np.arange(4), np.arange(10, 20), 1, 64, None)
    for rank in range(2):
        part = labels[sampling.shard(64, rank, 2, equal=True)]
        assert part.sum() == len(part) // 2


def test_batch_slices_cover_the_epoch() -> None:
    slices = sampling.batch_slices(10, 4)
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10)]
    assert sampling.batch_slices(0, 4) == []
