"""What real LUNA16 nodules look like, as distributions to draw from.

The counts are the real ones (PHANTOM.md, from the book's copy of the
LUNA16 ``annotations.csv``: 1,186 nodules in 888 scans). Nodule appearance
(solidity, margin, position) follows the LIDC-IDRI proportions roughly: most
nodules are solid; ground-glass and part-solid ones are mostly 5–20 mm; large
nodules are more often lobulated or spiculated.
"""

from __future__ import annotations

import numpy as np

#: Diameter histogram of real LUNA16 nodules: (low mm, high mm, count).
DIAMETER_BINS: tuple[tuple[float, float, int], ...] = (
    (3.25, 4.0, 49), (4.0, 5.0, 221), (5.0, 6.0, 232), (6.0, 8.0, 276), (8.0, 10.0, 127),
    (10.0, 15.0, 154), (15.0, 20.0, 77), (20.0, 30.0, 48), (30.0, 32.3, 2),
)
#: Nodules per scan in real LUNA16: count → number of scans (888 scans; 9 and 12 folded into 8).
NODULES_PER_SCAN: dict[int, int] = {0: 287, 1: 310, 2: 159, 3: 63, 4: 24, 5: 23, 6: 11, 7: 4, 8: 7}

KINDS = ("solid", "part-solid", "ground-glass")
SHAPES = ("spherical", "lobulated", "spiculated")
LOCATIONS = ("parenchyma", "juxtapleural", "juxtavascular")
#: Probability of each location for a nodule.
LOCATION_WEIGHTS = (0.55, 0.3, 0.15)


def sample_diameters(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` diameters (mm) from the real histogram, log-uniform inside each bin."""
    counts = np.array([c for _, _, c in DIAMETER_BINS], dtype=float)
    which = rng.choice(len(DIAMETER_BINS), size=n, p=counts / counts.sum())
    low = np.log(np.array([DIAMETER_BINS[i][0] for i in which]))
    high = np.log(np.array([DIAMETER_BINS[i][1] for i in which]))
    return np.exp(rng.uniform(low, high))


def sample_nodule_count(rng: np.random.Generator) -> int:
    """Nodules in one scan, from the real per-scan distribution (0–8)."""
    counts = np.array(list(NODULES_PER_SCAN.values()), dtype=float)
    return int(rng.choice(list(NODULES_PER_SCAN), p=counts / counts.sum()))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def sample_kind(rng: np.random.Generator, diameter: float) -> str:
    """Solidity of a nodule of this diameter: ground-glass and part-solid peak at 5–20 mm."""
    p_ggo = 0.15 if 4.5 <= diameter < 18.0 else 0.05
    p_part = 0.1 if 6.0 <= diameter < 25.0 else 0.02
    u = rng.uniform()
    if u < p_ggo:
        return "ground-glass"
    if u < p_ggo + p_part:
        return "part-solid"
    return "solid"


def sample_shape(rng: np.random.Generator, diameter: float, kind: str) -> str:
    """Margin of a nodule: spiculation and lobulation become common above ~10 mm."""
    p_spic = 0.02 + 0.5 * _sigmoid((diameter - 13.0) / 3.0)
    if kind == "ground-glass":
        p_spic *= 0.3
    p_lob = 0.18 + 0.22 * _sigmoid((diameter - 8.0) / 2.5)
    u = rng.uniform()
    if u < p_spic:
        return "spiculated"
    if u < p_spic + p_lob:
        return "lobulated"
    return "spherical"


def sample_calcified(rng: np.random.Generator, diameter: float, kind: str, shape: str) -> bool:
    """Whether a solid nodule is calcified (a benign sign; small smooth nodules mostly)."""
    if kind != "solid" or shape == "spiculated":
        return False
    return bool(rng.uniform() < (0.1 if diameter < 10.0 else 0.03))


def sample_location(rng: np.random.Generator) -> str:
    """Parenchymal, juxtapleural or juxtavascular."""
    return str(rng.choice(LOCATIONS, p=LOCATION_WEIGHTS))
