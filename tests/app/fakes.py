"""Stand-ins for the engine's detector in app tests: same interface, no weights, instant.

``FakeDetector.detect`` returns a result built from a list of candidate specs,
reports progress per stage, honours ``cancelled()`` and counts its calls, so a
test can assert that moving a threshold did not re-run detection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from engine.errors import CancelledError


@dataclass(frozen=True)
class FakeCandidate:
    """Same fields as ``engine.detection.Candidate``."""

    id: int
    center_irc: tuple[float, float, float]
    center_xyz: tuple[float, float, float]
    p_nodule: float
    p_malignant: float
    voxel_count: int
    diameter_mm: float
    bbox_irc: tuple[tuple[int, int, int], tuple[int, int, int]]


@dataclass(frozen=True)
class FakeResult:
    """Same fields as ``engine.detection.DetectionResult``."""

    series_uid: str
    shape: tuple[int, int, int]
    geometry: object
    candidates: tuple[FakeCandidate, ...]
    seg_probability: np.ndarray
    seg_threshold: float
    timings: dict = field(default_factory=dict)
    device: str = "cpu"
    model_ids: dict = field(default_factory=dict)


def make_candidate(ct, cid: int, irc, p_nodule: float, p_malignant: float = 0.1, diameter_mm: float = 6.0) -> FakeCandidate:
    """A candidate at voxel ``irc`` of ``ct``, its box spanning its diameter."""
    from engine.geometry import irc_to_xyz

    irc = tuple(float(v) for v in irc)
    half = [0.5 * diameter_mm / s for s in ct.geometry.spacing_irc]
    lo = tuple(int(max(0, np.floor(c - h + 0.5))) for c, h in zip(irc, half))
    hi = tuple(int(min(n - 1, np.floor(c + h + 0.5))) for c, h, n in zip(irc, half, ct.shape))
    xyz = tuple(float(v) for v in irc_to_xyz(ct.geometry, irc))
    return FakeCandidate(cid, irc, xyz, p_nodule, p_malignant, 30, diameter_mm, (lo, hi))


def probability_volume(ct, candidates) -> np.ndarray:
    """A uint8 probability volume (p * 255) with a ball at each candidate."""
    prob = np.zeros(ct.shape, dtype=np.uint8)
    for c in candidates:
        (lo_i, lo_r, lo_c), (hi_i, hi_r, hi_c) = c.bbox_irc
        prob[lo_i : hi_i + 1, lo_r : hi_r + 1, lo_c : hi_c + 1] = 230
    return prob


class FakeDetector:
    """A detector with the engine's interface, returning fixed candidates.

    Args:
        specs: ``(irc, p_nodule, p_malignant, diameter_mm)`` per candidate.
        stage_delay: Seconds to wait between stages (to test cancel).
    """

    def __init__(self, specs, stage_delay: float = 0.0) -> None:
        self.specs = list(specs)
        self.stage_delay = stage_delay
        self.detect_calls = 0
        self.regroup_calls: list[float] = []
        self.threads: list[int] = []
        self.started = threading.Event()

    def _candidates(self, ct, specs):
        return tuple(make_candidate(ct, k + 1, *spec) for k, spec in enumerate(specs))

    def detect(self, ct, progress: Callable | None = None, cancelled: Callable | None = None) -> FakeResult:
        self.detect_calls += 1
        self.threads.append(threading.get_ident())
        self.started.set()
        for k, stage in enumerate(("segmenting", "grouping", "classifying", "malignancy")):
            if progress is not None:
                progress(k / 4, stage)
            deadline = time.monotonic() + self.stage_delay
            while time.monotonic() < deadline:
                if cancelled is not None and cancelled():
                    raise CancelledError()
                time.sleep(0.01)
            if cancelled is not None and cancelled():
                raise CancelledError()
        if progress is not None:
            progress(1.0, "done")
        candidates = self._candidates(ct, self.specs)
        return FakeResult(
            series_uid=ct.series_uid,
            shape=ct.shape,
            geometry=ct.geometry,
            candidates=candidates,
            seg_probability=probability_volume(ct, candidates),
            seg_threshold=0.5,
            timings={"segmentation": 0.01, "grouping": 0.01, "classification": 0.01, "malignancy": 0.01},
            device="cpu",
            model_ids={"segmentation": "demo-seg", "nodule": "demo-cls", "malignancy": "demo-mal"},
        )

    def regroup(self, result: FakeResult, ct, seg_threshold: float) -> FakeResult:
        """Fewer candidates at higher thresholds: keep those with p_nodule above the threshold - 0.4."""
        self.regroup_calls.append(seg_threshold)
        kept = [s for s in self.specs if s[1] >= seg_threshold - 0.4]
        candidates = tuple(make_candidate(ct, 100 + k, *spec) for k, spec in enumerate(kept))
        return replace(result, candidates=candidates, seg_threshold=seg_threshold)
