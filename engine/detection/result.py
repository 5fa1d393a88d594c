"""What a detection returns: :class:`Candidate` and :class:`DetectionResult` (frozen).

The segmentation probability volume is stored once, as ``uint8`` levels
``q = round(255 · p)``. A voxel belongs to the segmentation at threshold ``t``
when ``q / 255 > t`` (:func:`threshold_level`); detection and re-grouping both
threshold these stored levels, so re-grouping at the detection's threshold
gives exactly the detection's candidates.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from engine.detection.settings import GroupingSettings
from engine.geometry import Geometry

#: Probability levels stored per voxel (uint8).
PROBABILITY_LEVELS = 255
NOT_FOR_CLINICAL_USE = "Research software: not for clinical use."

Irc = tuple[float, float, float]
IntIrc = tuple[int, int, int]


def threshold_level(seg_threshold: float) -> int:
    """The largest stored level that is *not* above ``seg_threshold``.

    Args:
        seg_threshold: Probability threshold in [0, 1].

    Returns:
        ``L`` such that a voxel is segmented when its level ``q > L``
        (equivalently ``q / 255 > seg_threshold``).
    """
    if not 0.0 <= seg_threshold <= 1.0:
        raise ValueError(f"segmentation threshold must lie in [0, 1], got {seg_threshold}")
    return int(math.floor(seg_threshold * PROBABILITY_LEVELS + 1e-9))


@dataclass(frozen=True)
class Candidate:
    """One connected component of the segmentation, classified.

    Args:
        id: 1-based number within its result (raster order of the components).
        center_irc: Centre (index, row, col) in voxels, fractional: the centre of
            mass of the eroded component weighted by ``clip(HU, -1000, 1000) + 1001``.
        center_xyz: The same point in patient LPS mm.
        p_nodule: Nodule classifier's probability that this is a nodule.
        p_malignant: Malignancy classifier's probability that it is malignant.
        voxel_count: Voxels of the component: its eroded core grown back by the
            one voxel layer the erosion removed, within the thresholded mask.
        diameter_mm: Diameter of a sphere with the component's volume, mm.
        bbox_irc: ``(lo, hi)`` voxel bounds (index, row, col) of the component,
            ``lo`` inclusive, ``hi`` exclusive.
    """

    id: int
    center_irc: Irc
    center_xyz: Irc
    p_nodule: float
    p_malignant: float
    voxel_count: int
    diameter_mm: float
    bbox_irc: tuple[IntIrc, IntIrc]

    @property
    def slice_index(self) -> int:
        """The slice (index axis) the centre lies on."""
        return int(math.floor(self.center_irc[0] + 0.5))


def _readonly(array: np.ndarray) -> np.ndarray:
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """Everything one detection produced for one CT series.

    Args:
        series_uid: The series detected on.
        shape: Volume size (index, row, col).
        geometry: The CT's geometry (for irc ↔ LPS mm).
        candidates: Every component found, none dropped by probability.
        seg_probability: ``uint8 (index, row, col)`` levels ``round(255·p)`` of
            the segmentation probability; 0 on slices or areas not segmented.
        grouping: How the candidates were grouped (threshold, erosion).
        timings: Seconds per stage (``lung_search``, ``segmentation``,
            ``grouping``, ``classification``, ``malignancy``, ``total``).
        device: Where the models ran (``"cpu"``, ``"cuda:0"``...).
        model_ids: ``{"segmentation": id, "classifier": id, "malignancy": id}``.
        precision: Floating-point type the models ran in.
        messages: Things the user should know (a CPU fallback, no lung found, ...).
        segmented_slices: Number of slices the segmentation model ran on.
        roi_irc: ``((i0, r0, c0), (i1, r1, c1))`` box that was segmented (hi exclusive).
        extra: Diagnostics: ``shared_trunk_stages`` (classifier layers shared with
            the malignancy model), ``segmented_voxels``, ``cpu_seconds`` (process
            CPU time per stage, all threads).
    """

    series_uid: str
    shape: tuple[int, int, int]
    geometry: Geometry
    candidates: tuple[Candidate, ...]
    seg_probability: np.ndarray
    grouping: GroupingSettings
    timings: Mapping[str, float]
    device: str
    model_ids: Mapping[str, str]
    precision: str = "float32"
    messages: tuple[str, ...] = ()
    segmented_slices: int = 0
    roi_irc: tuple[IntIrc, IntIrc] = ((0, 0, 0), (0, 0, 0))
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.grouping, GroupingSettings):
            raise TypeError(f"grouping must be a GroupingSettings, got {type(self.grouping).__name__}")
        if self.seg_probability.shape != tuple(self.shape):
            raise ValueError(f"probability volume {self.seg_probability.shape} does not match the CT {self.shape}")
        if self.seg_probability.dtype != np.uint8:
            raise TypeError(f"seg_probability must be uint8 levels, got {self.seg_probability.dtype}")
        object.__setattr__(self, "seg_probability", _readonly(self.seg_probability))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "messages", tuple(self.messages))
        for name in ("timings", "model_ids", "extra"):
            object.__setattr__(self, name, types.MappingProxyType(dict(getattr(self, name))))

    @property
    def seg_threshold(self) -> float:
        """The segmentation threshold the candidates were grouped at (``grouping.seg_threshold``)."""
        return self.grouping.seg_threshold

    def probability_slice(self, index: int) -> np.ndarray:
        """Segmentation probability of one slice as float32 ``(rows, cols)`` in [0, 1]."""
        return self.seg_probability[index].astype(np.float32) / PROBABILITY_LEVELS

    def nodules(self, nodule_threshold: float = 0.5) -> tuple[Candidate, ...]:
        """Candidates with ``p_nodule >= nodule_threshold``, most probable first."""
        kept = [c for c in self.candidates if c.p_nodule >= nodule_threshold]
        return tuple(sorted(kept, key=lambda c: -c.p_nodule))

    def centers_xyz(self) -> np.ndarray:
        """``(N, 3)`` float64 candidate centres, LPS mm."""
        return np.asarray([c.center_xyz for c in self.candidates], dtype=np.float64).reshape(-1, 3)

    def p_nodule(self) -> np.ndarray:
        """``(N,)`` float64 nodule probabilities in candidate order."""
        return np.asarray([c.p_nodule for c in self.candidates], dtype=np.float64)

    def p_malignant(self) -> np.ndarray:
        """``(N,)`` float64 malignancy probabilities in candidate order."""
        return np.asarray([c.p_malignant for c in self.candidates], dtype=np.float64)
