"""Evaluation metrics (numpy only, no torch): matching, the book's table, FROC/CPM, ROC.

* :mod:`engine.metrics.records` — :class:`Detection`, conversions to arrays.
* :mod:`engine.metrics.matching` — the book's and the LUNA16 matching rules.
* :mod:`engine.metrics.confusion` — the book's 3×4 confusion table.
* :mod:`engine.metrics.froc` — LUNA16 FROC, CPM and its bootstrap interval.
* :mod:`engine.metrics.roc` — ROC/AUC and the diameter baseline.
"""

from __future__ import annotations

from engine.metrics.confusion import ConfusionTable, confusion_counts, confusion_table, format_confusion
from engine.metrics.froc import (
    FROC_FP_RATES,
    MAX_MARKS_PER_SCAN,
    FrocResult,
    ScanScore,
    compute_froc,
    froc_curve,
    kept_marks_mask,
    score_scan,
    score_scan_records,
    sensitivity_at,
)
from engine.metrics.matching import book_match_matrix, distance_matrix, luna_hit_matrix
from engine.metrics.records import Detection, detections_from
from engine.metrics.roc import RocCurve, diameter_baseline_roc, roc_curve

__all__ = [
    "FROC_FP_RATES",
    "MAX_MARKS_PER_SCAN",
    "ConfusionTable",
    "Detection",
    "FrocResult",
    "RocCurve",
    "ScanScore",
    "book_match_matrix",
    "compute_froc",
    "confusion_counts",
    "confusion_table",
    "detections_from",
    "diameter_baseline_roc",
    "distance_matrix",
    "format_confusion",
    "froc_curve",
    "kept_marks_mask",
    "luna_hit_matrix",
    "roc_curve",
    "score_scan",
    "score_scan_records",
    "sensitivity_at",
]
