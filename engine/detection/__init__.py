"""Detection: one CT in, every nodule candidate out (SPEC §4).

Public surface: :class:`Detector` (``detect``, ``regroup``, ``classify_points``),
:class:`DetectorConfig`, :class:`DetectionResult`, :class:`Candidate`.
"""

from __future__ import annotations

from engine.detection.detector import Detector, DetectorConfig, default_weight_paths
from engine.detection.result import Candidate, DetectionResult, threshold_level

__all__ = ["Candidate", "DetectionResult", "Detector", "DetectorConfig", "default_weight_paths", "threshold_level"]
