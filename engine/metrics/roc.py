"""ROC curves and their area, for the malignancy model and the diameter baseline (SPEC §5).

A curve has one point per distinct score, thresholds descending, after a
``(0, 0)`` start at threshold +inf: the point at threshold ``t`` predicts
positive for every score ≥ t. Tied scores enter together, so a tie between a
positive and a negative is a diagonal step and counts one half in the area
(the Mann–Whitney convention). The area is the trapezoid rule.

The diameter baseline is the same curve with the annotated diameter as the
score: "predict malignant when diameter ≥ t", sweeping t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    """A receiver operating characteristic curve.

    Args:
        fpr: ``(K + 1,)`` false-positive rates, non-decreasing, from 0.
        tpr: ``(K + 1,)`` true-positive rates, non-decreasing, from 0.
        thresholds: ``(K + 1,)`` score thresholds, +inf then descending.
        auc: Area under the curve (trapezoid), NaN when either class is empty.
        n_positive: Positive samples.
        n_negative: Negative samples.
    """

    fpr: np.ndarray = field(repr=False, compare=False)
    tpr: np.ndarray = field(repr=False, compare=False)
    thresholds: np.ndarray = field(repr=False, compare=False)
    auc: float
    n_positive: int
    n_negative: int

    @property
    def defined(self) -> bool:
        """Whether both classes are present (otherwise the curve is meaningless)."""
        return self.n_positive > 0 and self.n_negative > 0

    def to_dict(self, include_curve: bool = False) -> dict[str, Any]:
        """JSON-ready summary (NaN becomes ``None``)."""
        out: dict[str, Any] = {
            "auc": float(self.auc) if np.isfinite(self.auc) else None,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
        }
        if include_curve:
            for name in ("fpr", "tpr", "thresholds"):
                out[name] = [float(v) if np.isfinite(v) else None for v in getattr(self, name)]
        return out


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> RocCurve:
    """The ROC curve of ``scores`` against binary ``labels``.

    Args:
        labels: ``(N,)`` bool (or 0/1): True for the positive class.
        scores: ``(N,)`` float scores, higher meaning more positive; must be finite.

    Returns:
        The :class:`RocCurve`; with an empty class the rates of that class are
        NaN and so is the area.

    Raises:
        ValueError: lengths differ or a score is not finite.
    """
    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isfinite(s).all():
        raise ValueError("ROC scores must be finite numbers")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.flatnonzero(np.concatenate([s[1:] != s[:-1], [True]])) if s.size else np.zeros(0, np.int64)
    tp = np.concatenate([[0], np.cumsum(y)[ends]]).astype(np.float64)
    fp = np.concatenate([[0], np.cumsum(~y)[ends]]).astype(np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / (n_pos if n_pos else np.nan)
        fpr = fp / (n_neg if n_neg else np.nan)
    auc = float(np.trapezoid(tpr, fpr)) if n_pos and n_neg else float("nan")
    thresholds = np.concatenate([[np.inf], s[ends]])
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=auc, n_positive=n_pos, n_negative=n_neg)


def diameter_baseline_roc(diameters_mm: np.ndarray, malignant: np.ndarray) -> RocCurve:
    """The diameter baseline: predict malignant when diameter ≥ t, for every t.

    Args:
        diameters_mm: ``(N,)`` annotated nodule diameters, mm.
        malignant: ``(N,)`` bool malignancy labels.

    Returns:
        The :class:`RocCurve` (thresholds are diameters in mm).
    """
    return roc_curve(malignant, diameters_mm)
