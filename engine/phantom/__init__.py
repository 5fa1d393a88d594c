"""Synthetic chest CT phantoms in LUNA16 format.

No real chest CT can be downloaded with the application, so it generates its
own: realistic enough that the pipeline learns the real problem on them
(nodules among vessels that look like round dots on an axial slice, nodules
against the pleura, faint ground-glass nodules), and written exactly as
LUNA16 is laid out so that every loader, trainer and evaluator runs the same
code on phantoms and on real data. See ``../shared/PHANTOM.md`` for the
numbers the phantoms reproduce.

Public surface:

* :func:`generate_series` — one series and its :class:`PhantomTruth`.
* :func:`plan_series` — everything but the voxels (fast statistics).
* :func:`write_dataset` — a LUNA16-format dataset folder.
"""

from __future__ import annotations

from engine.phantom.config import PRESETS, NoduleRequest
from engine.phantom.dataset import DatasetSummary, write_dataset, write_seeds
from engine.phantom.series import PHANTOM_VERSION, generate_series, plan_series, series_uid
from engine.phantom.tissues import Tissue
from engine.phantom.truth import PhantomCandidate, PhantomFinding, PhantomNodule, PhantomTruth

__all__ = [
    "DatasetSummary",
    "PHANTOM_VERSION",
    "PRESETS",
    "NoduleRequest",
    "PhantomCandidate",
    "PhantomFinding",
    "PhantomNodule",
    "PhantomTruth",
    "Tissue",
    "generate_series",
    "plan_series",
    "series_uid",
    "write_dataset",
    "write_seeds",
]
