"""LUNA16 FROC / CPM scoring, on hand-computed cases and the edge cases of SPEC §5."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from engine.luna import Annotation
from engine.metrics.froc import (
    FROC_FP_RATES,
    ScanScore,
    _bootstrap_sensitivities,
    compute_froc,
    froc_curve,
    kept_marks_mask,
    score_scan,
    score_scan_records,
    sensitivity_at,
)
from engine.metrics.records import Detection


def ann(xyz, diameter, uid="s") -> Annotation:
    return Annotation(series_uid=uid, center_xyz=tuple(map(float, xyz)), diameter_mm=diameter)


def mark(xyz, p, uid="s") -> Detection:
    return Detection(series_uid=uid, center_xyz=tuple(map(float, xyz)), p_nodule=p)


def scan(uid, nodule_probs=(), fp_probs=()) -> ScanScore:
    return ScanScore(uid, tuple(nodule_probs), tuple(fp_probs))


# --- the per-scan cap -----------------------------------------------------------
def test_cap_keeps_the_most_probable_marks() -> None:
    assert_array_equal(kept_marks_mask([0.1, 0.9, 0.5, 0.7, 0.3], 3), [False, True, True, True, False])


def test_cap_drops_marks_tied_at_the_cut_together() -> None:
    # the 4th best (0.7) is tied with the 3rd: the official rule keeps only p > 0.7
    assert_array_equal(kept_marks_mask([0.9, 0.8, 0.7, 0.7, 0.1], 3), [True, True, False, False, False])


def test_cap_keeps_everything_at_or_under_the_limit() -> None:
    assert kept_marks_mask([0.5] * 100, 100).all()
    assert kept_marks_mask(np.zeros(0), 100).shape == (0,)
    assert kept_marks_mask(np.arange(500.0), 0).all()


def test_marks_over_the_cap_cannot_hit() -> None:
    probs = np.linspace(0.99, 0.5, 150)
    xyz = np.column_stack([np.arange(150.0) * 100, np.zeros(150), np.zeros(150)])
    # the only nodule sits on the 120th best mark → dropped → missed
    score = score_scan("s", xyz[119:120], [10.0], np.zeros((0, 3)), [], xyz, probs)
    assert score.n_marks == 100 and score.n_dropped == 50
    assert np.isnan(score.nodule_probabilities[0])
    assert len(score.fp_probabilities) == 100


# --- scoring one scan ------------------------------------------------------------
def test_hand_computed_scan() -> None:
    nodules = [ann((0, 0, 0), 10.0), ann((50, 0, 0), 8.0)]
    excluded = [ann((0, 50, 0), -1.0)]  # treated as 10 mm
    marks = [
        mark((1, 0, 0), 0.9),  # N1
        mark((0, 2, 0), 0.95),  # N1, its best
        mark((0, 52, 0), 0.8),  # excluded finding → ignored
        mark((100, 0, 0), 0.6),  # FP
        mark((50, 4.1, 0), 0.3),  # 4.1 mm from N2 (radius 4) → FP
        mark((0, 4.5, 0), 0.4),  # N1 again
    ]
    score = score_scan_records("s", nodules, excluded, marks)
    assert score.nodule_probabilities[0] == 0.95
    assert np.isnan(score.nodule_probabilities[1])
    assert sorted(score.fp_probabilities) == [0.3, 0.6]
    assert (score.n_marks, score.n_ignored, score.n_extra_hits, score.n_dropped) == (6, 1, 2, 0)
    assert (score.n_nodules, score.n_detected) == (2, 1)


def test_mark_on_a_nodule_and_an_excluded_finding_counts_for_the_nodule() -> None:
    score = score_scan_records("s", [ann((0, 0, 0), 10.0)], [ann((3, 0, 0), 10.0)], [mark((1, 0, 0), 0.7)])
    assert score.nodule_probabilities == (0.7,)
    assert score.fp_probabilities == () and score.n_ignored == 0


def test_scan_scoring_does_not_depend_on_mark_order() -> None:
    rng = np.random.default_rng(3)
    xyz = rng.uniform(-30, 30, (40, 3))
    probs = rng.choice([0.2, 0.5, 0.8], 40)
    nod_xyz, nod_d = rng.uniform(-30, 30, (5, 3)), rng.uniform(5, 25, 5)
    exc_xyz, exc_d = rng.uniform(-30, 30, (3, 3)), np.array([-1.0, 6.0, 12.0])
    a = score_scan("s", nod_xyz, nod_d, exc_xyz, exc_d, xyz, probs, max_marks=30)
    perm = rng.permutation(40)
    b = score_scan("s", nod_xyz, nod_d, exc_xyz, exc_d, xyz[perm], probs[perm], max_marks=30)
    assert_array_equal(a.nodule_probabilities, b.nodule_probabilities)
    assert sorted(a.fp_probabilities) == sorted(b.fp_probabilities)
    assert (a.n_ignored, a.n_extra_hits, a.n_dropped) == (b.n_ignored, b.n_extra_hits, b.n_dropped)


# --- the curve and the operating points --------------------------------------------
def test_hand_computed_curve() -> None:
    # 2 scans, 4 nodules of which 2 detected (0.9, 0.5); FPs 0.8, 0.5 (tied with a TP), 0.2
    fps, sens, thr = froc_curve([0.9, 0.5], [0.8, 0.5, 0.2], n_scans=2, n_nodules=4)
    assert_allclose(fps, [0, 0, 0.5, 1.0, 1.5])
    assert_allclose(sens, [0, 0.25, 0.25, 0.5, 0.5])
    assert_allclose(thr, [np.inf, 0.9, 0.8, 0.5, 0.2])
    assert_allclose(sensitivity_at(fps, sens), [0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5])
    assert_allclose(sensitivity_at(fps, sens, [0.75, 1.25]), [0.375, 0.5])


def test_hand_computed_cpm_over_scans() -> None:
    scans = [scan("a", [0.9, np.nan], [0.8, 0.2]), scan("b", [0.5, np.nan], [0.5])]
    result = compute_froc(scans, bootstrap_samples=0)
    assert result.cpm == pytest.approx((3 * 0.25 + 4 * 0.5) / 7)
    assert result.sensitivities == pytest.approx((0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5))
    assert (result.n_scans, result.n_nodules, result.n_detected, result.n_false_positives) == (2, 4, 2, 3)
    assert result.cpm_interval is None and result.sensitivity_intervals is None


def test_tied_tp_and_fp_rise_together_on_a_diagonal() -> None:
    result = compute_froc([scan("a", [0.5], [0.5])], bootstrap_samples=0)
    assert_allclose(result.curve_fps, [0, 1])
    assert_allclose(result.curve_sensitivity, [0, 1])
    assert result.sensitivities == pytest.approx((0.125, 0.25, 0.5, 1, 1, 1, 1))
    assert result.cpm == pytest.approx(4.875 / 7)


def test_sensitivity_at_agrees_with_numpy_interp_on_increasing_curves() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        fps = np.concatenate([[0.0], np.cumsum(rng.uniform(0.01, 2.0, 12))])
        sens = np.concatenate([[0.0], np.cumsum(rng.uniform(0, 0.1, 12))])
        rates = rng.uniform(0.01, 30, 9)
        assert_allclose(sensitivity_at(fps, sens, rates), np.interp(rates, fps, sens))


def test_sensitivity_at_handles_a_batch_of_curves() -> None:
    fps = np.array([[0, 0, 0.5, 1.0, 1.5], [0, 1, 1, 2, 2]], dtype=float)
    sens = np.array([[0, 0.25, 0.25, 0.5, 0.5], [0, 0, 0.5, 0.5, 1.0]])
    out = sensitivity_at(fps, sens, [0.75, 1.0, 2.0])
    assert_allclose(out, [[0.375, 0.5, 0.5], [0.0, 0.5, 1.0]])


# --- edge cases ---------------------------------------------------------------------
def test_no_detections_at_all() -> None:
    result = compute_froc([scan("a", [np.nan]), scan("b", [np.nan, np.nan]), scan("c")], bootstrap_samples=50)
    assert result.cpm == 0.0 and result.sensitivities == (0.0,) * 7
    assert (result.n_scans, result.n_nodules, result.n_detected, result.n_false_positives) == (3, 3, 0, 0)
    assert result.cpm_interval == (0.0, 0.0)


def test_no_nodules_anywhere_gives_an_undefined_cpm() -> None:
    result = compute_froc([scan("a", [], [0.9, 0.1]), scan("b")], bootstrap_samples=20)
    assert np.isnan(result.cpm)
    assert result.cpm_interval is None
    assert result.to_dict()["cpm"] is None


def test_all_detections_on_excluded_findings() -> None:
    excluded = [ann((0, 0, 0), 10.0), ann((40, 0, 0), -1.0)]
    marks = [mark((1, 0, 0), 0.9), mark((40, 2, 0), 0.8), mark((0, 1, 1), 0.3)]
    score = score_scan_records("s", [ann((90, 0, 0), 6.0)], excluded, marks)
    assert score.n_ignored == 3 and score.fp_probabilities == ()
    result = compute_froc([score], bootstrap_samples=0)
    assert result.cpm == 0.0 and result.n_false_positives == 0 and result.n_ignored == 3


def test_no_false_positives_gives_full_sensitivity_at_every_rate() -> None:
    result = compute_froc([scan("a", [0.9, 0.4, np.nan])], bootstrap_samples=0)
    assert result.sensitivities == pytest.approx((2 / 3,) * 7)


def test_scans_without_marks_still_divide_the_false_positives() -> None:
    with_empty = compute_froc([scan("a", [0.5], [0.9]), scan("b", [np.nan]), scan("c")], bootstrap_samples=0)
    assert_allclose(with_empty.curve_fps, [0, 1 / 3, 1 / 3])
    assert_allclose(with_empty.curve_sensitivity, [0, 0, 0.5])
    # 1/8 and 1/4 lie before the TP appears at 1/3 FP/scan
    assert with_empty.sensitivities == pytest.approx((0, 0, 0.5, 0.5, 0.5, 0.5, 0.5))
    alone = compute_froc([scan("a", [0.5], [0.9])], bootstrap_samples=0)
    assert_allclose(alone.curve_fps, [0, 1, 1])
    assert alone.sensitivities == pytest.approx((0, 0, 0, 1, 1, 1, 1))


def test_a_nodule_hit_by_several_marks_is_one_tp() -> None:
    marks = [mark((0, 0, 0), 0.3), mark((1, 0, 0), 0.8), mark((0, 1, 0), 0.6)]
    score = score_scan_records("s", [ann((0, 0, 0), 6.0)], [], marks)
    assert score.nodule_probabilities == (0.8,) and score.n_extra_hits == 2
    result = compute_froc([score], bootstrap_samples=0)
    assert result.n_detected == 1 and result.n_false_positives == 0 and result.cpm == 1.0


def test_compute_froc_needs_scans() -> None:
    with pytest.raises(ValueError, match="at least one scan"):
        compute_froc([])


# --- bootstrap ------------------------------------------------------------------------
def _random_scans(rng: np.random.Generator, n: int) -> list[ScanScore]:
    scans = []
    for i in range(n):
        nod = rng.uniform(0, 1, rng.integers(0, 4))
        nod[rng.uniform(0, 1, nod.size) < 0.3] = np.nan
        scans.append(scan(str(i), nod, rng.uniform(0, 0.8, rng.integers(0, 12))))
    return scans


def test_bootstrap_is_seeded_and_brackets_the_cpm() -> None:
    scans = _random_scans(np.random.default_rng(1), 30)
    a = compute_froc(scans, bootstrap_samples=200, seed=7)
    b = compute_froc(scans, bootstrap_samples=200, seed=7)
    c = compute_froc(scans, bootstrap_samples=200, seed=8)
    assert a.cpm_interval == b.cpm_interval and a.cpm_interval != c.cpm_interval
    lo, hi = a.cpm_interval
    assert 0 <= lo < a.cpm < hi <= 1
    for (s_lo, s_hi), s in zip(a.sensitivity_intervals, a.sensitivities):
        assert s_lo <= s <= s_hi


def test_bootstrap_of_identical_scans_has_no_spread() -> None:
    scans = [scan(str(i), [0.9, np.nan], [0.8, 0.3]) for i in range(10)]
    result = compute_froc(scans, bootstrap_samples=100)
    assert result.cpm_interval == pytest.approx((result.cpm, result.cpm))


def test_vectorised_bootstrap_equals_recomputing_each_resample() -> None:
    scans = _random_scans(np.random.default_rng(2), 12)
    detected = [np.array([p for p in s.nodule_probabilities if np.isfinite(p)]) for s in scans]
    fp = [np.array(s.fp_probabilities) for s in scans]
    boot = _bootstrap_sensitivities(detected, fp, [s.n_nodules for s in scans], FROC_FP_RATES, 6, seed=5)
    draws = np.random.default_rng(5).integers(0, len(scans), size=(6, len(scans)))
    for row, idx in zip(boot, draws):
        expected = compute_froc([scans[i] for i in idx], bootstrap_samples=0).sensitivities
        assert_allclose(row, expected)


def _reference_score(nodules, excluded, marks, max_marks):
    """The official script's scoring written as plain loops (independent of the vectorised code)."""
    probs = sorted((p for _, p in marks), reverse=True)
    if len(marks) > max_marks:
        cut = probs[max_marks]
        marks = [m for m in marks if m[1] > cut]
    remaining = dict(enumerate(marks))
    best, ignored, extra = [], 0, 0
    findings = [(xyz, d, True) for xyz, d in nodules] + [(xyz, d, False) for xyz, d in excluded]
    for xyz, diameter, included in findings:
        radius = (10.0 if diameter < 0 else diameter) / 2
        hits = [k for k, (m_xyz, _) in enumerate(marks) if sum((a - b) ** 2 for a, b in zip(xyz, m_xyz)) < radius**2]
        if included:
            extra += max(len(hits) - 1, 0)
            best.append(max((marks[k][1] for k in hits), default=float("nan")))
            for k in hits:
                remaining.pop(k, None)
    for xyz, diameter, included in findings:
        if not included:
            radius = (10.0 if diameter < 0 else diameter) / 2
            for k, (m_xyz, _) in list(remaining.items()):
                if sum((a - b) ** 2 for a, b in zip(xyz, m_xyz)) < radius**2:
                    remaining.pop(k)
                    ignored += 1
    return best, sorted(p for _, p in remaining.values()), ignored, extra


def test_scan_scoring_agrees_with_a_loop_reference() -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        nodules = [(tuple(rng.uniform(-20, 20, 3)), float(rng.uniform(3, 20))) for _ in range(rng.integers(0, 4))]
        excluded = [(tuple(rng.uniform(-20, 20, 3)), float(rng.choice([-1.0, 6.0, 12.0]))) for _ in range(rng.integers(0, 3))]
        marks = [(tuple(rng.uniform(-22, 22, 3)), float(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9]))) for _ in range(rng.integers(0, 40))]
        best, fps, ignored, extra = _reference_score(nodules, excluded, marks, max_marks=25)
        got = score_scan_records(
            "s", [ann(x, d) for x, d in nodules], [ann(x, d) for x, d in excluded], [mark(x, p) for x, p in marks],
            max_marks=25,
        )
        assert_array_equal(got.nodule_probabilities, best)
        assert sorted(got.fp_probabilities) == fps
        assert (got.n_ignored, got.n_extra_hits) == (ignored, extra)
