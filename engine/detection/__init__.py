"""Detection: one CT in, every nodule candidate out (SPEC §4).

Public surface: :class:`Detector` (``detect``, ``regroup``, ``classify_points``;
built by ``Detector.from_checkpoints``), :class:`DetectorConfig`,
:class:`GroupingSettings`, :class:`DetectionResult`, :class:`Candidate`.

The contract (results, settings, demo weight paths) imports without torch;
:class:`Detector` and the stages import it, and are loaded on first use
(``from engine.detection import Detector``), so the viewer's GUI thread and a
command's argument parser can use the contract without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.detection.result import Candidate, DetectionResult, threshold_level
from engine.detection.settings import EROSIONS, DetectorConfig, GroupingSettings
from engine.detection.weights import checkpoint_paths, default_weight_paths

if TYPE_CHECKING:
    from engine.detection.detector import Detector

#: Names loaded on first access, with the module that defines them (it imports torch).
_LAZY = {"Detector": "engine.detection.detector"}

__all__ = [
    "EROSIONS",
    "Candidate",
    "DetectionResult",
    "Detector",
    "DetectorConfig",
    "GroupingSettings",
    "checkpoint_paths",
    "default_weight_paths",
    "threshold_level",
]


def __getattr__(name: str) -> Any:
    """Import :data:`_LAZY` names (and torch) when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
