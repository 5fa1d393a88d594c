"""The ground truth of a phantom series: nodules with malignancy, excluded findings, candidates, labels.

Coordinates are LPS millimetres (``*_xyz``) and voxel (index, row, col)
indices (``*_irc``) of the stored volume, exactly as the series is written to
disk, so the truth can be checked against the file through
:func:`engine.geometry.xyz_to_irc` for any direction matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.tissues import Tissue

Xyz = tuple[float, float, float]
Irc = tuple[int, int, int]


@dataclass(frozen=True)
class PhantomNodule:
    """A reference nodule (an ``annotations.csv`` row, with malignancy).

    Args:
        center_xyz: Centre (LPS mm).
        center_irc: Nearest voxel of the centre (index, row, col).
        diameter_mm: Diameter (mm): of the volume-equivalent sphere.
        kind: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        shape: ``"spherical"``, ``"lobulated"`` or ``"spiculated"``.
        location: ``"parenchyma"``, ``"juxtapleural"`` or ``"juxtavascular"``.
        ratings: Malignancy ratings 1..5 of 3 or 4 simulated readers.
        is_malignant: At least two ratings ≥ 4.
        bbox_low_xyz, bbox_high_xyz: Bounding box of the nodule body (LPS mm,
            spicules excluded), low ≤ high per axis.
        calcified: Whether it holds a dense calcified core.
        side: ``"right"`` or ``"left"`` lung.
    """

    center_xyz: Xyz
    center_irc: Irc
    diameter_mm: float
    kind: str
    shape: str
    location: str
    ratings: tuple[int, ...]
    is_malignant: bool
    bbox_low_xyz: Xyz
    bbox_high_xyz: Xyz
    calcified: bool
    side: str


@dataclass(frozen=True)
class PhantomFinding:
    """An excluded finding (an ``annotations_excluded.csv`` row).

    Args:
        center_xyz: Centre (LPS mm).
        center_irc: Nearest voxel (index, row, col).
        diameter_mm: Listed diameter (mm), -1 for findings without one (scars).
        kind: ``"small nodule"``, ``"granuloma"`` or ``"scar"``.
    """

    center_xyz: Xyz
    center_irc: Irc
    diameter_mm: float
    kind: str


@dataclass(frozen=True, slots=True)
class PhantomCandidate:
    """A candidate location (a ``candidates.csv`` row).

    Args:
        center_xyz: Location (LPS mm).
        label: 1 on a reference nodule, 0 elsewhere.
        source: What it lies on: ``"nodule"``, ``"vessel"``, ``"bifurcation"``,
            ``"pleura"``, ``"airway"``, ``"parenchyma"`` or ``"finding"``.
    """

    center_xyz: Xyz
    label: int
    source: str


@dataclass(frozen=True, eq=False)
class PhantomTruth:
    """Everything known about a generated series.

    Args:
        seed: The series seed.
        preset: The preset name.
        series_uid: The synthetic series uid (``2.25.<integer>``).
        nodules: Reference nodules.
        excluded: Excluded findings.
        candidates: Candidate locations (class 0 and 1).
        labels: ``uint8 (index, row, col)`` tissue label of every voxel
            (:class:`engine.phantom.tissues.Tissue`), same orientation as the
            volume, read-only; ``None`` for a truth built without voxels. A
            voxel gets a structure's label when the structure covers at least
            half of it, so a nodule under ~2 voxels across (a 4 mm nodule on
            the small preset's 2.2 × 2.2 × 5 mm grid) may have no ``NODULE`` voxel.
        noise_sigma: Image noise standard deviation (HU).
        flipped_xyz: Which image axes run against the LPS axes.
    """

    seed: int
    preset: str
    series_uid: str
    nodules: tuple[PhantomNodule, ...]
    excluded: tuple[PhantomFinding, ...]
    candidates: tuple[PhantomCandidate, ...]
    labels: np.ndarray | None
    noise_sigma: float
    flipped_xyz: tuple[bool, bool, bool]

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.flags.writeable:
            view = self.labels.view()
            view.flags.writeable = False
            object.__setattr__(self, "labels", view)

    @property
    def malignant_count(self) -> int:
        """Number of malignant nodules."""
        return sum(1 for n in self.nodules if n.is_malignant)

    def mask(self, *tissues: Tissue) -> np.ndarray:
        """``bool`` volume of the voxels labelled with any of ``tissues``."""
        self._need_labels()
        return np.isin(self.labels, np.array([int(t) for t in tissues], dtype=np.uint8))

    def lung_fraction(self) -> float:
        """Share of the scanned volume that is lung (parenchyma, vessels inside it excluded)."""
        self._need_labels()
        return float(np.count_nonzero(self.labels == Tissue.LUNG) / self.labels.size)

    def positive_rate(self) -> float:
        """Share of candidates that are class 1."""
        if not self.candidates:
            return 0.0
        return sum(c.label for c in self.candidates) / len(self.candidates)

    def _need_labels(self) -> None:
        if self.labels is None:
            raise ValueError(f"the truth of phantom {self.seed} was built without voxels: it has no label volume")
