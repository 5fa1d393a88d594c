"""The Qt-free viewer state: events, crosshair, thresholds, selection, marks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.findings import Mark
from app.state import OverlayMode, ViewerState
from app.windowing import WindowLevel
from engine.detection.settings import GroupingSettings
from tests.app.fakes import FakeDetector


@pytest.fixture
def ct(make_ct):
    return make_ct(shape=(20, 40, 40), spacing_xyz=(0.8, 0.8, 2.0))


SPECS = [((10, 20, 20), 0.95, 0.8, 12.0), ((5, 10, 10), 0.6, 0.2, 6.0), ((15, 30, 30), 0.42, 0.7, 5.0)]


def _recorder(state: ViewerState) -> list[str]:
    seen: list[str] = []
    for event in ("volume", "crosshair", "window", "overlay", "result", "findings", "selection", "cad"):
        state.subscribe(event, lambda e=event: seen.append(e))
    return seen


def test_events_fire_once_per_real_change(ct) -> None:
    state = ViewerState()
    seen = _recorder(state)
    state.set_volume(ct)
    assert state.crosshair == (10, 20, 20)
    assert seen[0] == "volume"
    seen.clear()
    state.set_crosshair((10, 20, 20))
    state.set_window(state.window)
    state.set_overlay_opacity(state.overlay_opacity)
    assert seen == []
    state.set_crosshair((3.4, -5, 99))
    assert state.crosshair == (3, 0, 39)  # rounded and clipped
    state.move_slice(0, -10)
    assert state.crosshair == (0, 0, 39)
    state.set_window(WindowLevel(350, 40))
    state.set_overlay_mode(OverlayMode.MASK)
    state.set_hide_cad(True)
    assert seen == ["crosshair", "crosshair", "window", "overlay", "cad"]


def test_unsubscribe(ct) -> None:
    state = ViewerState()
    calls = []
    off = state.subscribe("crosshair", lambda: calls.append(1))
    state.set_volume(ct)
    off()
    state.set_crosshair((1, 1, 1))
    assert calls == [1]
    with pytest.raises(KeyError):
        state.subscribe("nonsense", lambda: None)


def test_thresholds_change_findings_without_detection(ct) -> None:
    detector = FakeDetector(SPECS)
    state = ViewerState()
    state.set_volume(ct)
    state.set_result(detector.detect(ct))
    assert state.findings.ids() == [1, 2, 3]
    seen = _recorder(state)
    state.set_thresholds(nodule=0.7, near_miss_band=0.0)
    assert state.findings.ids() == [1] and "findings" in seen
    state.set_thresholds(malignancy=0.9)
    assert state.findings.n_malignant == 0
    assert detector.detect_calls == 1


def test_result_must_fit_the_volume(ct, make_ct) -> None:
    state = ViewerState()
    state.set_volume(make_ct(shape=(8, 8, 8)))
    with pytest.raises(ValueError, match="does not fit"):
        state.set_result(FakeDetector(SPECS).detect(ct))
    assert state.result is None


def test_selection_jumps_and_steps(ct) -> None:
    state = ViewerState()
    state.set_volume(ct)
    state.set_result(FakeDetector(SPECS).detect(ct))
    state.select(2)
    assert state.selected_id == 2 and state.crosshair == (5, 10, 10)
    assert state.step_selection(+1) == 3
    assert state.step_selection(+1) == 1  # wraps
    assert state.step_selection(-1) == 3
    assert state.step_selection(+1, order=[3, 2, 1]) == 2
    state.set_thresholds(nodule=0.99, near_miss_band=0.0)  # the selected finding is no longer shown
    assert state.selected_id is None
    assert state.step_selection(+1) is None


def test_marks_and_regroup_carry_them(ct) -> None:
    detector = FakeDetector(SPECS)
    state = ViewerState()
    state.set_volume(ct)
    result = detector.detect(ct)
    state.set_result(result)
    state.set_mark(1, Mark.ACCEPTED)
    state.set_mark(2, "rejected")
    assert state.findings.by_id(1).mark == Mark.ACCEPTED and state.findings.by_id(2).mark == Mark.REJECTED
    state.set_mark(2, None)
    assert state.marks == {1: Mark.ACCEPTED}
    regrouped = detector.regroup(result, ct, GroupingSettings(seg_threshold=0.7))
    state.set_note(1, "  spiculated  ")
    assert state.notes == {1: "spiculated"} and state.findings.by_id(1).note == "spiculated"
    state.set_result(regrouped)
    assert state.seg_threshold == 0.7
    assert state.marks == {100: Mark.ACCEPTED}  # candidate 1 is the first kept one, renumbered 100
    assert state.notes == {100: "spiculated"}
    state.set_result(replace(regrouped, grouping=GroupingSettings()))  # a new Detect: marks follow by position
    assert state.marks == {100: Mark.ACCEPTED}
    state.set_result(detector.detect(ct), carry=False)
    assert state.marks == {} and state.notes == {}
    state.restore_review({2: Mark.REJECTED, 99: Mark.ACCEPTED}, {2: "vessel", 3: " "})
    assert state.marks == {2: Mark.REJECTED} and state.notes == {2: "vessel"}
    assert state.findings.by_id(1).location  # findings name where they lie


def test_new_volume_clears_the_result(ct) -> None:
    state = ViewerState()
    state.set_volume(ct)
    state.set_result(FakeDetector(SPECS).detect(ct))
    state.set_volume(ct)
    assert state.result is None and state.findings.n_candidates == 0 and isinstance(state.findings.ids(), list)
    assert np.all(np.array(state.crosshair) == np.array(ct.shape) // 2)
