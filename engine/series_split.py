"""The deterministic train/validation/test split of a dataset's series (SPEC §1.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class SeriesSplit:
    """Series uids of each split; disjoint, each sorted."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()

    def of(self, name: str) -> tuple[str, ...]:
        """The uids of split ``name`` (``train``, ``val``, ``test`` or ``all``)."""
        if name == "all":
            return tuple(sorted(self.train + self.val + self.test))
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val, test or all")
        return getattr(self, name)


def split_series(uids: Iterable[str], val_stride: int = 10, test_stride: int = 0) -> SeriesSplit:
    """Split series deterministically by stride (SPEC §1.2).

    The uids are sorted; every ``val_stride``-th (indices 0, val_stride, ...) is
    validation. With ``test_stride > 0``, every ``test_stride``-th of the rest
    (again from its first) is test. Training is what remains.

    Args:
        uids: Series uids (any order, duplicates ignored).
        val_stride: Validation stride, ≥ 1 (1 puts everything in validation).
        test_stride: Test stride among the non-validation series, 0 for no test split.
    """
    if val_stride < 1 or test_stride < 0:
        raise ValueError("val_stride must be >= 1 and test_stride >= 0")
    ordered = sorted(set(uids))
    val = ordered[::val_stride]
    rest = [u for i, u in enumerate(ordered) if i % val_stride]
    test = rest[::test_stride] if test_stride else []
    test_set = set(test)
    train = [u for u in rest if u not in test_set]
    return SeriesSplit(tuple(train), tuple(val), tuple(test))
