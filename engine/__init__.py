"""The analysis engine: CT loading, geometry, phantoms, models, detection, metrics.

No Qt here (a test enforces it). Heavy modules (torch) are imported only by the
submodules that need them, so ``import engine`` stays fast.
"""

from __future__ import annotations

from engine.io.ct import load_ct
from engine.io.volume import CtVolume
from engine.io.dicom import DicomSeriesInfo, list_dicom_series
from engine.errors import EngineError
from engine.geometry import Geometry, irc_to_xyz, xyz_to_irc, xyz_to_irc_continuous

__all__ = [
    "CtVolume",
    "DicomSeriesInfo",
    "EngineError",
    "Geometry",
    "irc_to_xyz",
    "list_dicom_series",
    "load_ct",
    "xyz_to_irc",
    "xyz_to_irc_continuous",
]
