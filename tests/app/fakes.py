"""A stand-in for the engine's detector in app tests: same interface, no weights, instant.

``FakeDetector.detect`` returns a real ``engine.detection.result.DetectionResult``
built from candidate specs, reports progress per stage, honours
``cancelled()`` and counts its calls, so a test can assert that moving a
threshold did not re-run detection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.errors import CancelledError
from engine.geometry import irc_to_xyz

#: (irc, p_nodule, p_malignant, diameter_mm) of a candidate.
Spec = tuple[tuple[float, float, float], float, float, float]


def make_candidate(ct, cid: int, irc, p_nodule: float, p_malignant: float = 0.1, diameter_mm: float = 6.0) -> Candidate:
    """A candidate at voxel ``irc`` of ``ct``; its box (hi exclusive) spans its diameter."""
    irc = tuple(float(v) for v in irc)
    half = [0.5 * diameter_mm / s for s in ct.geometry.spacing_irc]
    lo = tuple(int(max(0, np.floor(c - h + 0.5))) for c, h in zip(irc, half))
    hi = tuple(int(min(n, np.floor(c + h + 0.5) + 1)) for c, h, n in zip(irc, half, ct.shape))
    xyz = tuple(float(v) for v in irc_to_xyz(ct.geometry, irc))
    return Candidate(cid, irc, xyz, p_nodule, p_malignant, 30, diameter_mm, (lo, hi))


def probability_volume(ct, candidates) -> np.ndarray:
    """uint8 probability levels (round(255 p)) with a box of p = 0.9 at each candidate."""
    prob = np.zeros(ct.shape, dtype=np.uint8)
    for c in candidates:
        (i0, r0, c0), (i1, r1, c1) = c.bbox_irc
        prob[i0:i1, r0:r1, c0:c1] = 230
    return prob


class FakeDetector:
    """A detector with the engine's interface, returning fixed candidates.

    Args:
        specs: ``(irc, p_nodule, p_malignant, diameter_mm)`` per candidate.
        stage_delay: Seconds each of the four stages takes (to test cancel).
    """

    def __init__(self, specs: list[Spec], stage_delay: float = 0.0) -> None:
        self.specs = list(specs)
        self.stage_delay = stage_delay
        self.detect_calls = 0
        self.regroup_calls: list[GroupingSettings] = []
        self.threads: list[int] = []
        self.started = threading.Event()

    def detect(self, ct, progress: Callable | None = None, cancelled: Callable | None = None) -> DetectionResult:
        self.detect_calls += 1
        self.threads.append(threading.get_ident())
        self.started.set()
        for k, stage in enumerate(("segmentation", "grouping", "classification", "malignancy")):
            if progress is not None:
                progress(k / 4, stage)
            deadline = time.monotonic() + self.stage_delay
            while time.monotonic() < deadline:
                if cancelled is not None and cancelled():
                    raise CancelledError()
                time.sleep(0.005)
            if cancelled is not None and cancelled():
                raise CancelledError()
        if progress is not None:
            progress(1.0, "done")
        candidates = tuple(make_candidate(ct, k + 1, *spec) for k, spec in enumerate(self.specs))
        return DetectionResult(
            series_uid=ct.series_uid,
            shape=ct.shape,
            geometry=ct.geometry,
            candidates=candidates,
            seg_probability=probability_volume(ct, candidates),
            grouping=GroupingSettings(),
            timings={"segmentation": 0.01, "grouping": 0.01, "classification": 0.01, "malignancy": 0.01, "total": 0.04},
            device="cpu",
            model_ids={"segmentation": "demo-seg", "classifier": "demo-cls", "malignancy": "demo-mal"},
        )

    def regroup(
        self,
        result: DetectionResult,
        ct,
        grouping: GroupingSettings,
        progress: Callable | None = None,
        cancelled: Callable | None = None,
    ) -> DetectionResult:
        """Fewer candidates at higher thresholds: keeps specs with p_nodule >= threshold - 0.4, renumbered from 100.

        The settings asked for are recorded in ``regroup_calls`` and in the result.
        """
        if not isinstance(grouping, GroupingSettings):
            raise TypeError(f"grouping must be a GroupingSettings, got {type(grouping).__name__}")
        self.regroup_calls.append(grouping)
        self.threads.append(threading.get_ident())
        kept = [s for s in self.specs if s[1] >= grouping.seg_threshold - 0.4]
        candidates = tuple(make_candidate(ct, 100 + k, *spec) for k, spec in enumerate(kept))
        return replace(result, candidates=candidates, grouping=grouping)
