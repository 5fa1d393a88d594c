"""The review is never lost: saved per series and detection, restored on re-Detect and after a restart."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.findings import Mark
from app.review import ReviewKeeper, ReviewStore, SavedFinding, SeriesReview, detection_key, match_saved
from app.state import ViewerState
from engine.detection.settings import GroupingSettings
from tests.app.fakes import FakeDetector, make_candidate

SPECS = [((10, 20, 20), 0.95, 0.8, 12.0), ((5, 10, 10), 0.6, 0.2, 6.0), ((15, 30, 30), 0.42, 0.7, 5.0)]


@pytest.fixture
def ct(make_ct):
    return make_ct(shape=(20, 40, 40), spacing_xyz=(0.8, 0.8, 2.0))


def _session(ct, folder, notices=None):
    """A fresh viewer (as after a restart) with a store on ``folder``, the series open."""
    state = ViewerState()
    store = ReviewStore(folder, notice=(notices.append if notices is not None else None))
    keeper = ReviewKeeper(state, store)
    state.set_volume(ct)
    return state, store, keeper


def test_verdicts_and_notes_survive_a_restart(ct, tmp_path) -> None:
    detector = FakeDetector(SPECS)
    state, store, _keeper = _session(ct, tmp_path)
    state.set_result(detector.detect(ct))
    state.set_mark(1, Mark.ACCEPTED)
    state.set_mark(2, Mark.REJECTED)
    state.set_note(1, "solid, smooth margin")
    path = store.path_for(ct.series_uid)
    saved = json.loads(path.read_text())  # written on every change
    assert saved["series_uid"] == ct.series_uid and len(saved["detections"][0]["findings"]) == 2

    # restart: new state, new store on the same folder; the detection is run again (ids change)
    moved = FakeDetector([((10, 20, 21), 0.9, 0.8, 12.0), *SPECS[1:]])
    state2, _store2, _keeper2 = _session(ct, tmp_path)
    assert state2.marks == {}  # nothing to attach to before Detect
    result = moved.detect(ct)
    result = replace(result, candidates=tuple(replace(c, id=c.id + 40) for c in result.candidates))
    state2.set_result(result)
    assert state2.marks == {41: Mark.ACCEPTED, 42: Mark.REJECTED}
    assert state2.notes == {41: "solid, smooth margin"}


def test_other_detection_settings_keep_their_own_review(ct, tmp_path) -> None:
    detector = FakeDetector(SPECS)
    state, store, _keeper = _session(ct, tmp_path)
    result = detector.detect(ct)
    state.set_result(result)
    state.set_mark(1, Mark.ACCEPTED)
    other = replace(result, grouping=GroupingSettings(seg_threshold=0.3), model_ids={**result.model_ids, "classifier": "run-7"})
    assert detection_key(other) != detection_key(result)
    state2, _, _ = _session(ct, tmp_path)
    state2.set_result(other)
    assert state2.marks == {}  # a review belongs to the models and grouping it was made with
    state2.set_result(result)
    assert state2.marks == {1: Mark.ACCEPTED}
    review = ReviewStore(tmp_path).load(ct.series_uid)
    assert set(review.detections) == {detection_key(result)}


def test_a_corrupt_review_is_set_aside_not_overwritten(ct, tmp_path) -> None:
    store = ReviewStore(tmp_path)
    path = store.path_for(ct.series_uid)
    path.write_text('{"version": 1, "series_uid": "' + ct.series_uid + '", "detections": [{"key": ')
    notices: list[str] = []
    state, _, _ = _session(ct, tmp_path, notices)
    assert len(notices) == 1 and "could not be read" in notices[0]
    aside = list(tmp_path.glob(path.name + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().endswith('"key": ')
    state.set_result(FakeDetector(SPECS).detect(ct))
    state.set_mark(1, Mark.REJECTED)
    assert ReviewStore(tmp_path).load(ct.series_uid).detections  # a new, readable review
    path.write_text(json.dumps({"version": 1, "series_uid": "another"}))
    assert ReviewStore(tmp_path, notices.append).load(ct.series_uid).detections == {}
    assert len(notices) == 2 and "another" in notices[1]


def test_match_by_position(ct) -> None:
    saved = [SavedFinding((0.0, 0.0, 0.0), 10.0, "accepted", ""), SavedFinding((50.0, 0.0, 0.0), 4.0, None, "x")]
    near = make_candidate(ct, 9, (0, 0, 0), 0.9)
    near = replace(near, center_xyz=(2.0, 1.0, 0.0))
    far = replace(make_candidate(ct, 10, (0, 0, 0), 0.9), center_xyz=(60.0, 0.0, 0.0))
    marks, notes, unmatched = match_saved(saved, [far, near])
    assert marks == {9: Mark.ACCEPTED} and notes == {} and unmatched == [saved[1]]
    text = SeriesReview("1.2", {"{}": saved}).to_json()
    assert SeriesReview.from_json(text).detections["{}"] == saved


def test_measurements_are_kept_with_the_series(ct, tmp_path) -> None:
    from app.measurements import Measurement

    state, store, _ = _session(ct, tmp_path)
    first = state.new_measurement(0, 10, (10, 5, 5), (10, 5, 20))
    state.add_measurement(Measurement.between(ct.geometry, 7, 1, 20, (3, 20, 4), (9, 20, 4)))
    saved = json.loads(store.path_for(ct.series_uid).read_text())
    assert [m["id"] for m in saved["measurements"]] == [first.id, 7]
    state2, _, _ = _session(ct, tmp_path)  # a restart: the ruler lines come back before any Detect
    assert [m.to_dict() for m in state2.measurements] == [m.to_dict() for m in state.measurements]
    assert state2.measurements[0].length_mm == pytest.approx(15 * 0.8)
    state2.remove_measurement(7)
    assert len(json.loads(store.path_for(ct.series_uid).read_text())["measurements"]) == 1


def test_a_review_saved_before_the_method_was_named_is_restored(ct, tmp_path) -> None:
    """Older files keyed a detection by a grouping dict without ``method``; they read back under today's key."""
    detector = FakeDetector(SPECS)
    state, store, _keeper = _session(ct, tmp_path)
    components = GroupingSettings(method="components")
    state.set_result(replace(detector.detect(ct), grouping=components))
    state.set_mark(1, Mark.ACCEPTED)
    path = store.path_for(ct.series_uid)
    saved = json.loads(path.read_text())
    key = saved["detections"][0]["key"]
    assert key["grouping"]["method"] == "components"
    key["grouping"] = {"seg_threshold": 0.5, "erosion": "3d"}  # as written while components was the default
    path.write_text(json.dumps(saved))
    state2, _store2, _keeper2 = _session(ct, tmp_path)
    state2.set_result(replace(detector.detect(ct), grouping=components))
    assert state2.marks == {1: Mark.ACCEPTED}
    # and it is not taken for a peaks detection's review
    state3, _store3, _keeper3 = _session(ct, tmp_path)
    state3.set_result(replace(detector.detect(ct), grouping=GroupingSettings()))
    assert state3.marks == {}
