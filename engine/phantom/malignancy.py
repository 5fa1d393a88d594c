"""Simulated radiologists rating nodule malignancy 1–5, as in LIDC-IDRI.

Each nodule has a hidden suspicion score built from what a radiologist sees:
size (log diameter), spiculation and lobulation of the margin, a solid
component in a ground-glass nodule, and calcification (benign). Three or four
readers each rate it ``round(offset + score + reader bias + noise)``, clipped to
1..5; the nodule is malignant when at least two ratings are ≥ 4 (the book's
rule for ``annotations_with_malignancy.csv``).

The default weights were tuned by simulation over real-like nodule populations
(:func:`simulate_population`) so that, as in the real file, about a third of
nodules are malignant, diameter alone separates malignant from benign with a
ROC AUC of about 0.91, and margin and solidity add information beyond size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.distributions import sample_calcified, sample_diameters, sample_kind, sample_shape


@dataclass(frozen=True)
class NoduleLook:
    """What readers see of a nodule.

    Args:
        diameter_mm: Diameter (mm).
        kind: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        shape: ``"spherical"``, ``"lobulated"`` or ``"spiculated"``.
        calcified: Whether it holds calcium.
    """

    diameter_mm: float
    kind: str
    shape: str
    calcified: bool = False


@dataclass(frozen=True)
class ReaderModel:
    """Weights of the simulated readers (rating units).

    Args:
        offset: Rating of a 6 mm smooth solid nodule before noise.
        size: Weight of ``ln(diameter / 6 mm)``.
        spiculated, lobulated, part_solid, ground_glass, calcified: Shifts for those findings.
        nodule_sd: Spread of the hidden score between nodules of the same look.
        reader_sd: Spread of one reader's bias; rating_sd: noise of a single rating.
        p_four_readers: Probability that four (not three) readers rated the nodule.
    """

    offset: float = 2.55
    size: float = 1.55
    spiculated: float = 0.9
    lobulated: float = 0.4
    part_solid: float = 0.55
    ground_glass: float = -0.35
    calcified: float = -1.8
    nodule_sd: float = 0.3
    reader_sd: float = 0.3
    rating_sd: float = 0.55
    p_four_readers: float = 0.65

    def score(self, look: NoduleLook) -> float:
        """The nodule's expected rating shift from its look (no noise)."""
        s = self.size * np.log(look.diameter_mm / 6.0)
        s += self.spiculated * (look.shape == "spiculated") + self.lobulated * (look.shape == "lobulated")
        s += self.part_solid * (look.kind == "part-solid") + self.ground_glass * (look.kind == "ground-glass")
        s += self.calcified * look.calcified
        return float(s)


def rate(look: NoduleLook, rng: np.random.Generator, model: ReaderModel = ReaderModel()) -> tuple[int, ...]:
    """Ratings 1..5 of one nodule by 3 or 4 simulated readers.

    Args:
        look: The nodule's appearance.
        rng: Random stream for readers.
        model: Reader weights.

    Returns:
        A tuple of 3 or 4 integer ratings.
    """
    n = 4 if rng.uniform() < model.p_four_readers else 3
    hidden = model.offset + model.score(look) + rng.normal(0.0, model.nodule_sd)
    raw = hidden + rng.normal(0.0, model.reader_sd, size=n) + rng.normal(0.0, model.rating_sd, size=n)
    return tuple(int(v) for v in np.clip(np.rint(raw), 1, 5))


def is_malignant(ratings: tuple[int, ...]) -> bool:
    """The book's rule: malignant when at least two readers rated ≥ 4."""
    return sum(1 for r in ratings if r >= 4) >= 2


def sample_look(rng: np.random.Generator, diameter_mm: float | None = None) -> NoduleLook:
    """A nodule look drawn like the real population (diameter from the real histogram when not given)."""
    d = float(sample_diameters(rng, 1)[0]) if diameter_mm is None else float(diameter_mm)
    kind = sample_kind(rng, d)
    shape = sample_shape(rng, d, kind)
    return NoduleLook(d, kind, shape, sample_calcified(rng, d, kind, shape))


def simulate_population(n: int, seed: int, model: ReaderModel = ReaderModel()) -> tuple[list[NoduleLook], list[tuple[int, ...]]]:
    """Looks and ratings of ``n`` nodules drawn like the real population, without rendering any volume.

    Args:
        n: Number of nodules.
        seed: Random seed.
        model: Reader weights.

    Returns:
        ``(looks, ratings)`` lists of length ``n``.
    """
    rng = np.random.default_rng(seed)
    looks = [sample_look(rng) for _ in range(n)]
    return looks, [rate(look, rng, model) for look in looks]
