"""Which cached sample each training step sees: balanced interleaving, shuffling, sharding.

All functions are pure and vectorised: they turn sample numbers ``0..L-1`` of
an epoch into rows of the crop cache. Lists are reshuffled every epoch from
``(seed, epoch)``, so every rank of a distributed run computes the same epoch
and takes its own contiguous share of it.
"""

from __future__ import annotations

import numpy as np


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one epoch (identical on every rank).

    Args:
        seed: The run's seed.
        epoch: 1-based epoch number.
        stream: Separates independent uses within an epoch (0: sampling).
    """
    return np.random.default_rng([int(seed), int(epoch), int(stream)])


def balanced_positions(sample_numbers: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Map sample numbers to positions in the positive or negative list (SPEC §3).

    With ``ratio = r`` one positive comes per ``r`` negatives: ``pos = n // (r+1)``;
    a number with a non-zero remainder ``n % (r+1)`` is a negative at position
    ``n - 1 - pos``. Positions are not yet wrapped to the list lengths.

    Args:
        sample_numbers: ``(L,)`` int sample numbers within the epoch.
        ratio: Negatives per positive, ≥ 1.

    Returns:
        ``(is_positive (L,) bool, position (L,) int64)``.
    """
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1 for balanced sampling, got {ratio}")
    n = np.asarray(sample_numbers, dtype=np.int64)
    pos = n // (ratio + 1)
    is_positive = n % (ratio + 1) == 0
    return is_positive, np.where(is_positive, pos, n - 1 - pos)


def balanced_epoch(
    positives: np.ndarray, negatives: np.ndarray, ratio: int, length: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of interleaved positives and negatives.

    Args:
        positives: ``(P,)`` cache rows of the positive class, P ≥ 1.
        negatives: ``(Q,)`` cache rows of the negative class, Q ≥ 1.
        ratio: Negatives per positive (≥ 1).
        length: Samples in the epoch.
        rng: Shuffles both lists first; ``None`` keeps their order.

    Returns:
        ``(rows (length,) int64, labels (length,) int64)``, label 1 = positive.
    """
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("balanced sampling needs at least one sample of each class")
    pos_list = np.asarray(positives, dtype=np.int64)
    neg_list = np.asarray(negatives, dtype=np.int64)
    if rng is not None:
        pos_list = rng.permutation(pos_list)
        neg_list = rng.permutation(neg_list)
    is_pos, position = balanced_positions(np.arange(length), ratio)
    rows = np.where(is_pos, pos_list[position % len(pos_list)], neg_list[position % len(neg_list)])
    return rows, is_pos.astype(np.int64)


def natural_epoch(
    rows: np.ndarray, labels: np.ndarray, length: int | None, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch without balancing: the samples in (shuffled) order, repeated to ``length``.

    Args:
        rows: ``(N,)`` cache rows.
        labels: ``(N,)`` their labels.
        length: Samples in the epoch; ``None`` for exactly one pass.
        rng: Shuffles the order; ``None`` keeps it.
    """
    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    order = rng.permutation(len(rows)) if rng is not None else np.arange(len(rows))
    if length is not None and len(rows):
        order = np.resize(order, length)  # repeats the permutation when length > N
    return rows[order], labels[order]


def malignancy_epoch(
    malignant: np.ndarray,
    benign: np.ndarray,
    negatives: np.ndarray,
    length: int,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of the malignancy fine-tune's interleave (the book's recipe).

    Odd sample numbers are malignant nodules (``n // 2``), multiples of 4 benign
    nodules (``n // 4``), the rest non-nodule candidates (``n // 4``) labelled
    benign; each list wraps and is shuffled per epoch. Without non-nodule
    candidates their slots take benign nodules.

    Returns:
        ``(rows (length,) int64, labels (length,) int64)``, label 1 = malignant.
    """
    if len(malignant) == 0 or len(benign) == 0:
        raise ValueError("malignancy training needs at least one malignant and one benign nodule")
    lists = [np.asarray(v, dtype=np.int64) for v in (malignant, benign, negatives)]
    if rng is not None:
        lists = [rng.permutation(v) for v in lists]
    mal, ben, neg = lists
    if len(neg) == 0:
        neg = ben
    n = np.arange(length, dtype=np.int64)
    rows = np.where(
        n % 2 == 1,
        mal[(n // 2) % len(mal)],
        np.where(n % 4 == 0, ben[(n // 4) % len(ben)], neg[(n // 4) % len(neg)]),
    )
    return rows, (n % 2 == 1).astype(np.int64)


def shard(length: int, rank: int, world_size: int, equal: bool) -> slice:
    """The contiguous share of an epoch that one rank processes.

    Contiguous (not strided) shares keep the interleaved class balance within
    every rank's batches.

    Args:
        length: Samples in the epoch.
        rank: This process's rank.
        world_size: Number of processes.
        equal: Give every rank exactly ``length // world_size`` samples (training,
            where ranks step in lock-step; the remainder is dropped) instead of
            covering every sample once (validation).
    """
    if equal:
        share = length // world_size
        return slice(rank * share, (rank + 1) * share)
    bounds = np.linspace(0, length, world_size + 1).round().astype(int)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def batch_slices(length: int, batch_size: int) -> list[slice]:
    """Consecutive batches covering ``0..length-1`` (the last may be short)."""
    return [slice(start, min(start + batch_size, length)) for start in range(0, length, batch_size)]
