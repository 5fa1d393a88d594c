"""Reviewing findings: Detect in the background, markers, table, live thresholds, re-grouping, review."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose
from PySide6.QtCore import Qt

from app.detection_panel import DEMO_DISCLAIMER
from app.findings import Mark
from app.planes import Plane
from engine.detection.settings import EROSIONS, GroupingSettings
from engine.errors import CheckpointError
from tests.app.conftest import detect_and_wait, open_and_wait


@pytest.fixture
def detected(qtbot, window, write_volume):
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    return window


def _markers(view) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(view.markers.data["x"], view.markers.data["y"])]


def _overlay_at(view, row: int, col: int) -> int:
    """The axial overlay's level at slice pixel (row, col): its image may cover only part of the slice."""
    v0, u0 = view.overlay_origin
    image = view.overlay.image
    r, c = row - v0, col - u0
    return int(image[r, c]) if 0 <= r < image.shape[0] and 0 <= c < image.shape[1] else 0


def _table(window) -> list[list[str]]:
    proxy = window.findings_panel.proxy
    return [[proxy.index(r, c).data() for c in range(proxy.columnCount())] for r in range(proxy.rowCount())]


def test_detect_runs_off_the_gui_thread_and_fills_the_table(qtbot, window, write_volume, fake_detector, errors) -> None:
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    stages: list[str] = []
    window.detector.progress.connect(lambda f, s: stages.append(s))
    detect_and_wait(qtbot, window)
    assert errors == []
    assert fake_detector.detect_calls == 1 and fake_detector.threads[0] != threading.get_ident()
    assert {"segmentation", "grouping", "classification", "malignancy"} <= set(stages)
    rows = _table(window)
    assert [r[0] for r in rows] == ["1", "2", "3"]  # 4 is below the near-miss band
    assert rows[0][2:5] == ["0.95", "0.85", "10.0"] and rows[0][6] == "13" and rows[0][7] == "malignant"
    assert rows[2][7] == "near miss, malig."
    c = window.state.result.candidates[0]
    assert rows[0][5] == ", ".join(f"{v:.1f}" for v in c.center_xyz)  # LPS to 0.1 mm
    assert rows[0][1] in {"R upper", "R middle", "R lower", "L upper", "L middle", "L lower"}
    assert window.findings_panel.counts.text().startswith(
        "2 CAD candidates ≥ 0.50 · 1 with p(malignant) ≥ 0.50 · 1 near miss · 4 in all"
    )
    assert "nodule" not in window.findings_panel.counts.text()
    assert window.detection_panel.disclaimer.text() == DEMO_DISCLAIMER
    assert "on cpu" in window.detection_panel.stage.text()


def test_markers_on_every_slice_a_candidate_spans(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    c1 = detected.state.result.candidates[0]  # centre slice 12, 10 mm on 2.5 mm slices: slices 10..14
    (lo, _, _), (hi, _, _) = c1.bbox_irc
    assert (lo, hi) == (10, 15)
    for k in range(lo, hi):
        axial.go_to_slice(k)
        assert_allclose(_markers(axial), [axial.layout_.to_screen(c1.center_irc)])
    axial.go_to_slice(9)
    assert _markers(axial) == []
    # the same finding in the other planes, on their centre slices
    for plane in (Plane.CORONAL, Plane.SAGITTAL):
        view = detected.views[plane]
        view.go_to_slice(int(round(c1.center_irc[view.layout_.slice_axis])))
        assert any(np.allclose(m, view.layout_.to_screen(c1.center_irc)) for m in _markers(view))
    # a near miss is dashed and dimmer, a nodule solid
    axial.go_to_slice(18)
    pens = list(axial.markers.data["pen"])
    assert len(pens) == 1 and pens[0].style() == Qt.PenStyle.DashLine and pens[0].color().alpha() < 255
    axial.go_to_slice(12)
    assert axial.markers.data["pen"][0].style() == Qt.PenStyle.SolidLine
    # the circle is sized in mm: diameter 10 mm plus the margin on both sides
    assert axial.markers.data["size"][0] == pytest.approx(2 * (5.0 + 2.5))
    assert axial.overlay.isVisible() and axial.overlay.image.dtype == np.uint8


def test_row_click_moves_all_views(qtbot, detected) -> None:
    table = detected.findings_panel.table
    row = detected.findings_panel.row_of(2)
    rect = table.visualRect(detected.findings_panel.proxy.index(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert detected.state.selected_id == 2
    assert detected.state.crosshair == (6, 12, 10)
    assert [v.slice_index for v in detected.views.values()] == [6, 12, 10]
    detected.state.set_crosshair((0, 0, 0))
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Return)  # Enter jumps back to the selected finding
    assert detected.state.crosshair == (6, 12, 10)


def test_next_and_previous_follow_the_table_order(qtbot, detected) -> None:
    detected.findings_panel.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)  # by diameter: 3, 2, 1
    detected.actions_["next"].trigger()
    assert detected.state.selected_id == 3
    detected.actions_["next"].trigger()
    assert detected.state.selected_id == 2
    detected.actions_["previous"].trigger()
    detected.actions_["previous"].trigger()
    assert detected.state.selected_id == 1  # wrapped around
    assert detected.state.crosshair == (12, 24, 20)


def test_cancel_keeps_the_previous_result(qtbot, detected, fake_detector) -> None:
    before = detected.state.result
    fake_detector.stage_delay = 2.0
    fake_detector.started.clear()
    with qtbot.waitSignal(detected.detector.cancelled, timeout=10000):
        detected.run_detect()
        assert fake_detector.started.wait(5)
        assert detected.detection_panel.cancel_button.isEnabled()
        detected.detection_panel.cancel_button.click()
    qtbot.waitUntil(lambda: not detected.detector.busy, timeout=5000)
    assert detected.state.result is before
    assert [r[0] for r in _table(detected)] == ["1", "2", "3"]
    assert "Cancelled" in detected.detection_panel.stage.text()
    assert detected.detection_panel.detect_button.isEnabled()


def test_detector_error_shows_a_dialog_and_keeps_the_result(qtbot, make_window, write_volume, errors) -> None:
    def broken():
        raise CheckpointError("the demo model weights are missing (resources/models/segmentation.pt)")

    window = make_window()
    window.provider.reset(broken)
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    assert window.state.result is None
    assert errors == [("Detection failed", "the demo model weights are missing (resources/models/segmentation.pt)")]


def test_thresholds_filter_without_rerunning_detection(qtbot, detected, fake_detector) -> None:
    panel = detected.detection_panel
    axial = detected.views[Plane.AXIAL]
    axial.go_to_slice(6)
    assert len(_markers(axial)) == 1
    panel.nodule_slider.slider.setValue(80)  # candidate 2 (0.70) becomes a near miss, 3 (0.40) drops out
    assert [r[0] for r in _table(detected)] == ["1", "2"]
    assert detected.findings_panel.counts.text().startswith("1 CAD candidate ≥ 0.80 · 1 with p(malignant) ≥ 0.50 · 1 near miss")
    assert axial.markers.data["pen"][0].style() == Qt.PenStyle.DashLine
    panel.band_slider.slider.setValue(0)  # no near misses
    assert [r[0] for r in _table(detected)] == ["1"] and _markers(axial) == []
    panel.malignancy_slider.slider.setValue(90)
    assert _table(detected)[0][7] == "nodule"
    panel.nodule_slider.slider.setValue(3)
    panel.band_slider.slider.setValue(20)
    assert len(_table(detected)) == 4
    assert fake_detector.detect_calls == 1 and fake_detector.regroup_calls == []


def test_sensitivity_regroups_from_stored_probabilities(qtbot, detected, fake_detector) -> None:
    detected.state.select(1)
    detected.state.set_mark(1, Mark.ACCEPTED)
    with qtbot.waitSignal(detected.detector.done, timeout=10000):
        detected.detection_panel.seg_slider.slider.setValue(80)
    assert fake_detector.regroup_calls == [GroupingSettings(seg_threshold=0.8)] and fake_detector.detect_calls == 1
    assert fake_detector.threads[-1] != threading.get_ident()
    assert detected.state.seg_threshold == pytest.approx(0.8)
    assert [r[0] for r in _table(detected)] == ["1", "2", "3"]  # display numbers; the ids are 100…
    assert detected.state.marks == {100: Mark.ACCEPTED}  # the mark followed its nodule
    assert "Re-grouped" in detected.detection_panel.stage.text()


def test_hide_cad_hides_all_marks(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    assert len(_markers(axial)) == 1 and axial.overlay.isVisible()
    detected.actions_["hide_cad"].trigger()
    assert detected.state.hide_cad
    for view in detected.views.values():
        assert _markers(view) == [] and not view.overlay.isVisible()
        assert not any(label.isVisible() for label in view.labels)
    assert detected.detection_panel.hide_cad.isChecked()
    assert not detected.findings_panel.table.isVisible() and "hidden" in detected.findings_panel.counts.text()
    detected.state.select(1)  # a selection made before hiding shows no circle either
    assert all(tile.pixmap().isNull() for tile in detected.crop_panel.tiles.values())
    assert not detected.findings_panel.accept_button.isEnabled()
    detected.detection_panel.hide_cad.setChecked(False)
    assert len(_markers(axial)) == 1 and axial.overlay.isVisible()
    assert detected.findings_panel.table.isVisible() and detected.findings_panel.counts.text().startswith("2 CAD candidates")


def test_overlay_mode_and_opacity(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    panel = detected.detection_panel
    assert detected.state.overlay_mode.value == "findings"  # default: outline around the findings only
    c1 = detected.state.result.candidates[0]
    (i0, r0, c0), (i1, r1, c1_) = c1.bbox_irc
    assert _overlay_at(axial, r0, c0) == 255 and _overlay_at(axial, (r0 + r1) // 2, (c0 + c1_) // 2) == 0
    assert axial.overlay.image.shape[0] < 30 and axial.overlay_origin != (0, 0)  # only around the finding
    panel.overlay_mode.setCurrentIndex(panel.overlay_mode.findData("outline"))
    assert _overlay_at(axial, r0, c0) == 255 and detected.state.overlay_mode.value == "outline"
    panel.opacity.setValue(80)
    assert axial.overlay.opacity() == pytest.approx(0.8)
    panel.overlay_mode.setCurrentIndex(panel.overlay_mode.findData("mask"))
    lut = axial.overlay.lut
    assert lut[127, 3] == 0 and lut[128, 3] == 255  # segmented where level > floor(0.5 * 255)
    detected.actions_["overlay"].trigger()
    assert detected.state.overlay_mode.value == "off" and not axial.overlay.isVisible()


def test_accept_and_reject(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    detected.state.select(1)
    detected.findings_panel.accept_button.click()
    assert detected.state.marks == {1: Mark.ACCEPTED}
    row = detected.findings_panel.row_of(1)
    assert _table(detected)[row][7] == "malignant ✓"
    assert axial.labels[0].toPlainText() == "1 ✓"
    detected.actions_["reject"].trigger()
    assert detected.state.marks == {1: Mark.REJECTED} and _table(detected)[row][7] == "malignant ✗"
    assert axial.markers.data["pen"][0].style() == Qt.PenStyle.DotLine
    assert "1 rejected" in detected.findings_panel.counts.text()
    detected.actions_["clear_mark"].trigger()
    assert detected.state.marks == {}


def test_crop_preview_of_the_selected_finding(qtbot, detected) -> None:
    crop = detected.crop_panel
    assert all(tile.pixmap().isNull() for tile in crop.tiles.values())
    detected.state.select(2)
    assert crop.title.text().startswith("#2 ")
    for plane, tile in crop.tiles.items():
        pixmap = tile.pixmap()
        assert not pixmap.isNull() and max(pixmap.width(), pixmap.height()) == crop.tile_px  # tiles grow with the dock
    # coronal crop of 30 mm: 2.5 mm slices are taller than 0.8 mm pixels, the aspect stays square in mm
    coronal = crop.tiles[Plane.CORONAL].pixmap()
    assert abs(coronal.width() - coronal.height()) <= 12
    detected.state.select(None)
    assert all(tile.pixmap().isNull() for tile in crop.tiles.values())


def test_opening_another_series_clears_the_findings(qtbot, detected, write_volume) -> None:
    open_and_wait(qtbot, detected, write_volume("other.nii.gz"))
    assert detected.state.result is None and _table(detected) == []
    assert _markers(detected.views[Plane.AXIAL]) == []
    assert not detected.views[Plane.AXIAL].overlay.isVisible()


def test_detect_without_volume_does_nothing(qtbot, window, fake_detector) -> None:
    assert not window.actions_["detect"].isEnabled() and not window.detection_panel.detect_button.isEnabled()
    window.run_detect()
    assert fake_detector.detect_calls == 0



def test_overlay_follows_the_slice_after_being_off(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    detected.actions_["overlay"].trigger()  # off
    axial.go_to_slice(6)  # candidate 2's slice
    assert not axial.overlay.isVisible()
    detected.actions_["overlay"].trigger()  # back on: the pixels are those of slice 6
    c2 = detected.state.result.candidates[1]
    (_, r0, c0), _ = c2.bbox_irc
    assert axial.overlay.isVisible() and _overlay_at(axial, r0, c0) == 255
    axial.go_to_slice(0)  # no probability on this slice: nothing drawn
    assert not axial.overlay.isVisible()


def test_findings_overlay_shows_only_around_shown_findings(qtbot, detected) -> None:
    axial = detected.views[Plane.AXIAL]
    c3 = detected.state.result.candidates[2]  # a near miss at slice 18
    axial.go_to_slice(18)
    (_, r0, c0), _ = c3.bbox_irc
    assert axial.overlay.isVisible() and _overlay_at(axial, r0, c0) == 255
    detected.state.set_thresholds(near_miss_band=0.0)  # no longer shown: its outline goes too
    assert not axial.overlay.isVisible()
    detected.state.set_thresholds(near_miss_band=0.2)
    assert axial.overlay.isVisible() and _overlay_at(axial, r0, c0) == 255


def test_erosion_choice_regroups_and_follows_the_result(qtbot, detected, fake_detector) -> None:
    panel = detected.detection_panel
    assert panel.erosion.currentData() == "3d" and panel.erosion.isEnabled()
    with qtbot.waitSignal(detected.detector.done, timeout=10000):
        panel.erosion.setCurrentIndex(panel.erosion.findData("in-plane"))
        panel.erosion.activated.emit(panel.erosion.currentIndex())
    # the panel's choice reaches Detector.regroup as one GroupingSettings, the threshold kept
    assert fake_detector.regroup_calls == [GroupingSettings(seg_threshold=0.5, erosion="in-plane")]
    assert fake_detector.detect_calls == 1
    assert detected.state.result.grouping.erosion == "in-plane" and detected.state.grouping.erosion == "in-plane"
    assert "Re-grouped" in panel.stage.text() and "erosion in-plane" in panel.stage.text()
    # choosing what the result already has starts nothing
    panel.erosion.activated.emit(panel.erosion.currentIndex())
    assert not detected.detector.busy and len(fake_detector.regroup_calls) == 1
    # a new Detect groups with the detector's own setting, and the choice follows it
    detect_and_wait(qtbot, detected)
    assert panel.erosion.currentData() == "3d"
    assert [panel.erosion.itemData(i) for i in range(panel.erosion.count())] == list(EROSIONS)


def test_progress_names_the_device_and_an_eta() -> None:
    from app.detection_panel import progress_text

    assert progress_text("detect", "segmentation", 0.25, 3.0, "cuda:0") == (
        "Detecting on cuda:0: segmentation · 25% · 3.0 s, about 9 s left"
    )
    assert progress_text("regroup", "", 0.01, 0.2, None) == "Re-grouping: starting · 1% · 0.2 s"  # too early to guess
