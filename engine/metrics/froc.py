"""LUNA16 FROC analysis and the competition performance metric (CPM), SPEC §5.

Scoring follows the official LUNA16 evaluation script:

* Each scan keeps at most ``max_marks`` (100) marks, those with the highest
  probability. As in the official script, the kept marks are those strictly
  above the probability of the ``max_marks + 1``-th best, so marks tied at the
  cut are all dropped together and the result never depends on row order.
* A mark hits a finding when its distance to the centre is < diameter / 2.
  Each annotated nodule hit by at least one mark is one true positive, at the
  highest probability among the marks hitting it; the other marks on it are
  ignored. Marks on excluded findings (``annotations_excluded.csv``) that hit
  no nodule are ignored. Every other mark is a false positive.
* The FROC curve is, over all thresholds (one point per distinct
  probability, after a ``(0, 0)`` start), false positives per scan against the
  fraction of all nodules detected — missed nodules count in the denominator.
* Sensitivity at 1/8 … 8 FP/scan is read off that curve by linear
  interpolation between its points (numpy ``interp`` semantics: beyond the last
  point the last sensitivity holds). CPM is the mean of the seven.
* A bootstrap over scans (resampling scans with replacement, the number of
  scans fixed) gives percentile intervals for each sensitivity and the CPM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from engine.luna import Annotation
from engine.metrics.matching import luna_hit_matrix
from engine.metrics.records import Detection, annotation_arrays, detection_arrays

#: False positives per scan at which sensitivity is read (the CPM points).
FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: The official limit on marks per scan.
MAX_MARKS_PER_SCAN = 100
#: Bootstrap work is chunked to keep about this many matrix cells at once (~100 MB peak).
_BOOTSTRAP_CELLS = 1_000_000


@dataclass(frozen=True)
class ScanScore:
    """What one scan contributes to the FROC.

    Args:
        series_uid: The scan.
        nodule_probabilities: One value per annotated nodule: the best
            probability of a mark hitting it, NaN when none does (a miss).
        fp_probabilities: Probabilities of the false-positive marks.
        n_marks: Marks considered (after the per-scan cap).
        n_dropped: Marks over the cap, not considered.
        n_ignored: Marks ignored because they hit only excluded findings.
        n_extra_hits: Marks on a nodule beyond one per nodule (ignored).
    """

    series_uid: str
    nodule_probabilities: tuple[float, ...] = ()
    fp_probabilities: tuple[float, ...] = ()
    n_marks: int = 0
    n_dropped: int = 0
    n_ignored: int = 0
    n_extra_hits: int = 0

    @property
    def n_nodules(self) -> int:
        """Annotated nodules in the scan."""
        return len(self.nodule_probabilities)

    @property
    def n_detected(self) -> int:
        """Nodules hit by at least one mark."""
        return int(np.isfinite(np.asarray(self.nodule_probabilities, dtype=np.float64)).sum())


def kept_marks_mask(probabilities: np.ndarray, max_marks: int = MAX_MARKS_PER_SCAN) -> np.ndarray:
    """Which marks of one scan the official script keeps.

    Args:
        probabilities: ``(M,)`` mark probabilities.
        max_marks: The cap; 0 or less keeps every mark.

    Returns:
        bool ``(M,)``: all True when ``M <= max_marks``, else True for marks
        strictly more probable than the ``max_marks + 1``-th best.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if max_marks <= 0 or p.size <= max_marks:
        return np.ones(p.shape, dtype=bool)
    cut = np.partition(-p, max_marks)[max_marks]  # minus the (max_marks+1)-th largest
    return p > -cut


def score_scan(
    series_uid: str,
    nodule_xyz: np.ndarray,
    nodule_diameter_mm: np.ndarray,
    excluded_xyz: np.ndarray,
    excluded_diameter_mm: np.ndarray,
    mark_xyz: np.ndarray,
    mark_probability: np.ndarray,
    max_marks: int = MAX_MARKS_PER_SCAN,
) -> ScanScore:
    """Score the marks of one scan against its nodules and excluded findings.

    Args:
        series_uid: The scan.
        nodule_xyz: ``(N, 3)`` annotated nodule centres, LPS mm.
        nodule_diameter_mm: ``(N,)`` their diameters, mm.
        excluded_xyz: ``(X, 3)`` excluded finding centres, LPS mm.
        excluded_diameter_mm: ``(X,)`` their diameters (negative → 10 mm).
        mark_xyz: ``(M, 3)`` mark positions, LPS mm.
        mark_probability: ``(M,)`` mark probabilities.
        max_marks: Per-scan cap (see :func:`kept_marks_mask`).

    Returns:
        The scan's :class:`ScanScore`.
    """
    prob = np.asarray(mark_probability, dtype=np.float64).reshape(-1)
    keep = kept_marks_mask(prob, max_marks)
    xyz = np.asarray(mark_xyz, dtype=np.float64).reshape(-1, 3)[keep]
    prob = prob[keep]
    hits = luna_hit_matrix(nodule_xyz, nodule_diameter_mm, xyz)
    on_excluded = luna_hit_matrix(excluded_xyz, excluded_diameter_mm, xyz).any(axis=0)
    on_nodule = hits.any(axis=0)
    best = np.where(hits, prob[None, :], -np.inf).max(axis=1, initial=-np.inf)
    best = np.where(np.isfinite(best), best, np.nan)
    false_positive = ~on_nodule & ~on_excluded
    return ScanScore(
        series_uid=series_uid,
        nodule_probabilities=tuple(float(v) for v in best),
        fp_probabilities=tuple(float(v) for v in prob[false_positive]),
        n_marks=int(prob.size),
        n_dropped=int((~keep).sum()),
        n_ignored=int((on_excluded & ~on_nodule).sum()),
        n_extra_hits=int(np.maximum(hits.sum(axis=1) - 1, 0).sum()),
    )


def score_scan_records(
    series_uid: str,
    nodules: Sequence[Annotation],
    excluded: Sequence[Annotation],
    detections: Sequence[Detection],
    max_marks: int = MAX_MARKS_PER_SCAN,
) -> ScanScore:
    """:func:`score_scan` from records; the mark probability is ``p_nodule``."""
    n_xyz, n_diam, _ = annotation_arrays(nodules)
    x_xyz, x_diam, _ = annotation_arrays(excluded)
    d_xyz, d_prob, _ = detection_arrays(detections)
    return score_scan(series_uid, n_xyz, n_diam, x_xyz, x_diam, d_xyz, d_prob, max_marks)


def froc_curve(
    tp_probabilities: np.ndarray, fp_probabilities: np.ndarray, n_scans: int, n_nodules: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FROC curve from the detected nodules' and the false positives' probabilities.

    Args:
        tp_probabilities: ``(P,)`` best probability of each detected nodule.
        fp_probabilities: ``(F,)`` probabilities of the false-positive marks.
        n_scans: Scans evaluated (the FP-per-scan divisor), ≥ 1.
        n_nodules: All annotated nodules, detected or not (sensitivity divisor).

    Returns:
        ``(fps_per_scan, sensitivity, thresholds)``, each float64 ``(K + 1,)``
        for K distinct probabilities: the point at threshold ``thresholds[k]``
        counts the marks with probability ≥ it; the first point is
        ``(0, 0)`` at threshold +inf. Sensitivity is NaN when ``n_nodules`` is 0.
    """
    if n_scans < 1:
        raise ValueError("the FROC needs at least one scan")
    tp = np.asarray(tp_probabilities, dtype=np.float64).reshape(-1)
    fp = np.asarray(fp_probabilities, dtype=np.float64).reshape(-1)
    scores = np.concatenate([tp, fp])
    is_tp = np.concatenate([np.ones(tp.size, dtype=np.int64), np.zeros(fp.size, dtype=np.int64)])
    order = np.argsort(-scores, kind="stable")
    scores, is_tp = scores[order], is_tp[order]
    ends = _run_ends(scores)
    cum_tp = np.cumsum(is_tp)[ends]
    cum_fp = np.cumsum(1 - is_tp)[ends]
    fps = np.concatenate([[0.0], cum_fp / n_scans])
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.concatenate([[0.0], cum_tp.astype(np.float64)]) / (n_nodules if n_nodules > 0 else np.nan)
    thresholds = np.concatenate([[np.inf], scores[ends]])
    return fps, sens, thresholds


def sensitivity_at(fps: np.ndarray, sensitivity: np.ndarray, fp_rates: Sequence[float] = FROC_FP_RATES) -> np.ndarray:
    """Interpolate sensitivity at given FP-per-scan rates on one or many FROC curves.

    Args:
        fps: ``(K,)`` or ``(B, K)`` FP per scan, non-decreasing along the last axis.
        sensitivity: Same shape, the matching sensitivities.
        fp_rates: ``(R,)`` rates, each > 0.

    Returns:
        ``(R,)`` or ``(B, R)``: for each rate, linear interpolation between the
        last point at or below it and the next point; the last sensitivity when
        no point lies beyond it.
    """
    fps = np.asarray(fps, dtype=np.float64)
    sens = np.asarray(sensitivity, dtype=np.float64)
    single = fps.ndim == 1
    fps, sens = np.atleast_2d(fps), np.atleast_2d(sens)
    rates = np.asarray(fp_rates, dtype=np.float64)
    last = fps.shape[1] - 1
    # k: last index with fps <= rate, per curve and rate -> (B, R)
    k = np.stack([np.searchsorted(row, rates, side="right") for row in fps]) - 1
    k = np.clip(k, 0, last)
    k1 = np.minimum(k + 1, last)
    x0, x1 = np.take_along_axis(fps, k, 1), np.take_along_axis(fps, k1, 1)
    y0, y1 = np.take_along_axis(sens, k, 1), np.take_along_axis(sens, k1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(x1 > x0, (rates[None, :] - x0) / (x1 - x0), 0.0)
    out = np.where(k == last, sens[:, -1:], y0 + np.clip(t, 0.0, 1.0) * (y1 - y0))
    return out[0] if single else out


@dataclass(frozen=True)
class FrocResult:
    """The FROC analysis of a set of scans.

    Args:
        fp_rates: FP-per-scan operating points.
        sensitivities: Sensitivity at each (NaN when there are no nodules).
        cpm: Mean of ``sensitivities``.
        cpm_interval: Bootstrap percentile interval of the CPM, or ``None``
            without a bootstrap (or when no resample had a nodule).
        sensitivity_intervals: Per-rate bootstrap intervals, or ``None``.
        n_scans, n_nodules, n_detected, n_false_positives: Totals.
        n_ignored: Marks that hit only excluded findings.
        n_extra_hits: Extra marks on already-hit nodules.
        n_dropped: Marks over the per-scan cap.
        bootstrap_samples, seed, confidence: The bootstrap's settings.
        curve_fps, curve_sensitivity, curve_thresholds: The full curve (see
            :func:`froc_curve`).
    """

    fp_rates: tuple[float, ...]
    sensitivities: tuple[float, ...]
    cpm: float
    cpm_interval: tuple[float, float] | None
    sensitivity_intervals: tuple[tuple[float, float], ...] | None
    n_scans: int
    n_nodules: int
    n_detected: int
    n_false_positives: int
    n_ignored: int
    n_extra_hits: int
    n_dropped: int
    bootstrap_samples: int
    seed: int
    confidence: float
    curve_fps: np.ndarray = field(repr=False, compare=False)
    curve_sensitivity: np.ndarray = field(repr=False, compare=False)
    curve_thresholds: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN becomes ``None``; the curve is left out)."""

        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        def pair(p: tuple[float, float] | None) -> list[float | None] | None:
            return None if p is None else [num(p[0]), num(p[1])]

        return {
            "fp_rates": list(self.fp_rates),
            "sensitivities": [num(v) for v in self.sensitivities],
            "cpm": num(self.cpm),
            "cpm_interval": pair(self.cpm_interval),
            "sensitivity_intervals": None
            if self.sensitivity_intervals is None
            else [pair(p) for p in self.sensitivity_intervals],
            "confidence": self.confidence,
            "bootstrap_samples": self.bootstrap_samples,
            "seed": self.seed,
            "n_scans": self.n_scans,
            "n_nodules": self.n_nodules,
            "n_detected": self.n_detected,
            "n_false_positives": self.n_false_positives,
            "n_ignored": self.n_ignored,
            "n_extra_hits": self.n_extra_hits,
            "n_dropped": self.n_dropped,
        }


def compute_froc(
    scans: Sequence[ScanScore],
    fp_rates: Sequence[float] = FROC_FP_RATES,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> FrocResult:
    """FROC, sensitivities at ``fp_rates``, CPM and its bootstrap interval.

    Args:
        scans: One :class:`ScanScore` per evaluated scan — include scans with
            no marks and scans with no nodules: they count in the FP divisor.
        fp_rates: The operating points (FP per scan).
        bootstrap_samples: Resamples of the scans; 0 skips the bootstrap.
        seed: Seed of the bootstrap's random generator.
        confidence: Width of the percentile intervals.

    Returns:
        The :class:`FrocResult`.

    Raises:
        ValueError: no scans.
    """
    if not scans:
        raise ValueError("the FROC needs at least one scan")
    nodule_probs = [np.asarray(s.nodule_probabilities, dtype=np.float64) for s in scans]
    fp_probs = [np.asarray(s.fp_probabilities, dtype=np.float64) for s in scans]
    detected = [p[np.isfinite(p)] for p in nodule_probs]
    n_nodules = int(sum(p.size for p in nodule_probs))
    fps, sens, thresholds = froc_curve(np.concatenate(detected), np.concatenate(fp_probs), len(scans), n_nodules)
    at = sensitivity_at(fps, sens, fp_rates)
    cpm_interval = sens_intervals = None
    if bootstrap_samples > 0:
        boot = _bootstrap_sensitivities(detected, fp_probs, [p.size for p in nodule_probs], fp_rates, bootstrap_samples, seed)
        cpm_interval, sens_intervals = _intervals(boot, confidence)
    return FrocResult(
        fp_rates=tuple(float(r) for r in fp_rates),
        sensitivities=tuple(float(v) for v in at),
        cpm=float(np.mean(at)),
        cpm_interval=cpm_interval,
        sensitivity_intervals=sens_intervals,
        n_scans=len(scans),
        n_nodules=n_nodules,
        n_detected=int(sum(p.size for p in detected)),
        n_false_positives=int(sum(p.size for p in fp_probs)),
        n_ignored=int(sum(s.n_ignored for s in scans)),
        n_extra_hits=int(sum(s.n_extra_hits for s in scans)),
        n_dropped=int(sum(s.n_dropped for s in scans)),
        bootstrap_samples=int(bootstrap_samples),
        seed=int(seed),
        confidence=float(confidence),
        curve_fps=fps,
        curve_sensitivity=sens,
        curve_thresholds=thresholds,
    )


def _run_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of equal values."""
    if sorted_scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))


def _bootstrap_sensitivities(
    detected: list[np.ndarray],
    fp_probs: list[np.ndarray],
    nodules_per_scan: list[int],
    fp_rates: Sequence[float],
    samples: int,
    seed: int,
) -> np.ndarray:
    """Sensitivities at ``fp_rates`` for ``samples`` resamples of the scans, ``(samples, R)``.

    One global sort of all entries; each resample only re-weights them by how
    often their scan was drawn, so a chunk of resamples is a few cumulative sums.
    """
    n_scans = len(detected)
    scores = np.concatenate(detected + fp_probs)
    is_tp = np.concatenate([np.ones(p.size, np.int32) for p in detected] + [np.zeros(p.size, np.int32) for p in fp_probs])
    scan_of = np.concatenate(
        [np.full(p.size, i, np.int64) for i, p in enumerate(detected)]
        + [np.full(p.size, i, np.int64) for i, p in enumerate(fp_probs)]
    )
    order = np.argsort(-scores, kind="stable")
    scores, is_tp, scan_of = scores[order], is_tp[order], scan_of[order]
    ends = _run_ends(scores)
    per_scan_nodules = np.asarray(nodules_per_scan, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = np.empty((samples, len(fp_rates)), dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CELLS // max(scores.size, n_scans, 1))
    for start in range(0, samples, chunk):
        b = min(chunk, samples - start)
        draws = rng.integers(0, n_scans, size=(b, n_scans))
        flat = (draws + np.arange(b)[:, None] * n_scans).ravel()
        counts = np.bincount(flat, minlength=b * n_scans).reshape(b, n_scans)
        weights = counts.astype(np.int32)[:, scan_of]  # int32 halves the memory traffic
        tp_w = weights * is_tp[None, :]
        cum_tp = np.cumsum(tp_w, axis=1, dtype=np.int32)[:, ends]
        cum_fp = np.cumsum(weights, axis=1, dtype=np.int32)[:, ends] - cum_tp
        n_nod = (counts @ per_scan_nodules).astype(np.float64)
        zeros = np.zeros((b, 1))
        fps = np.concatenate([zeros, cum_fp / n_scans], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = np.concatenate([zeros, cum_tp.astype(np.float64)], axis=1) / np.where(n_nod > 0, n_nod, np.nan)[:, None]
        out[start : start + b] = sensitivity_at(fps, sens, fp_rates)
    return out


def _intervals(
    boot: np.ndarray, confidence: float
) -> tuple[tuple[float, float] | None, tuple[tuple[float, float], ...] | None]:
    """Percentile intervals of the CPM and of each sensitivity over defined resamples."""
    defined = np.isfinite(boot).all(axis=1)
    if not defined.any():
        return None, None
    boot = boot[defined]
    lo, hi = 50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)
    cpm = boot.mean(axis=1)
    cpm_interval = (float(np.percentile(cpm, lo)), float(np.percentile(cpm, hi)))
    sens_lo, sens_hi = np.percentile(boot, lo, axis=0), np.percentile(boot, hi, axis=0)
    return cpm_interval, tuple((float(a), float(b)) for a, b in zip(sens_lo, sens_hi))
