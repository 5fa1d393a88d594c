"""Reading tools in the window: ruler, thin slab with markers, cine, go-to-finding zoom, crosshair gap, scale bars."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from PySide6.QtCore import QPoint, Qt

from app.cine import next_cine_position
from app.planes import Plane, display_slice
from app.view_overlays import nice_scale_length, text_item_rect
from tests.app.conftest import SMALL_SPACING_XYZ, detect_and_wait, open_and_wait
from tests.app.qt_input import drag, view_point


@pytest.fixture
def loaded(qtbot, window, write_volume):
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    qtbot.wait(20)
    return window


def test_ruler_drag_measures_in_mm_and_delete_removes_it(qtbot, loaded) -> None:
    loaded.actions_["measure"].trigger()
    assert loaded.state.measure_mode
    axial = loaded.views[Plane.AXIAL]
    viewport = axial.canvas.viewport()
    start, end = (12, 10, 8), (12, 30, 28)  # 20 rows and 20 columns apart on slice 12
    drag(viewport, Qt.MouseButton.LeftButton, view_point(axial, start), view_point(axial, end))
    assert loaded.state.crosshair == (12, 24, 20)  # the ruler does not move the crosshair
    (m,) = loaded.state.measurements
    sx, sy, _ = SMALL_SPACING_XYZ
    assert (m.axis, m.slice_index) == (0, 12)
    assert m.length_mm == pytest.approx(np.hypot(20 * sy, 20 * sx), abs=0.1 * max(sx, sy))
    # drawn, with its label, and listed
    assert axial.measure_layer.shown and axial.measure_layer.shown[0][0] == m.id
    assert any(label.isVisible() and label.toPlainText() == m.label() for label in axial.measure_layer._labels)
    panel = loaded.crop_panel.measurements
    assert panel.list.count() == 1 and f"{m.length_mm:.1f} mm" in panel.list.item(0).text()
    # not on another slice
    axial.scroll(1)
    assert not axial.measure_layer.shown
    axial.scroll(-1)
    # click selects, Delete removes
    loaded.state.select_measurement(None)
    mid = tuple(0.5 * (np.array(start) + np.array(end)))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=view_point(axial, mid))
    assert loaded.state.selected_measurement == m.id
    axial.canvas.setFocus()
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Delete)
    assert loaded.state.measurements == () and panel.list.count() == 0
    loaded.actions_["measure"].trigger()
    assert not loaded.state.measure_mode


def test_slab_shows_a_mip_with_markers_of_every_finding_it_cuts(qtbot, loaded) -> None:
    detect_and_wait(qtbot, loaded)
    state, axial = loaded.state, loaded.views[Plane.AXIAL]
    axial.go_to_slice(9)  # the 10 mm finding spans slices 10-14, the 6 mm one slices 5-7 (2.5 mm slices)
    assert len(axial.markers.data) == 0
    loaded.actions_["slab"].trigger()
    assert state.slab.enabled and axial.slab_range() == (7, 11)  # 10 mm at 2.5 mm: 5 slices
    hu = state.volume.hu
    expected = np.max([display_slice(hu, axial.layout_, k) for k in range(7, 12)], axis=0)
    assert_array_equal(axial.image.image, expected)
    assert len(axial.markers.data) == 2  # both findings meet the slab
    assert "MIP slab 12.5 mm" in axial.canvas.info.text()
    assert not axial.overlay.isVisible()
    state.set_slab(mode="minip")
    assert_array_equal(axial.image.image, np.min([display_slice(hu, axial.layout_, k) for k in range(7, 12)], axis=0))
    loaded.actions_["slab"].trigger()
    assert_array_equal(axial.image.image, display_slice(hu, axial.layout_, 9))


def test_go_to_finding_zooms_and_opens_the_crosshair_around_the_lesion(qtbot, loaded) -> None:
    detect_and_wait(qtbot, loaded)
    state = loaded.state
    assert state.finding_fov_mm == 60.0
    first = state.findings.findings[0]
    state.select(first.id)
    for view in loaded.views.values():
        (x0, x1), (y0, y1) = view.viewbox.viewRange()
        assert min(x1 - x0, y1 - y0) == pytest.approx(60.0, rel=0.05)
        u, v = view.layout_.to_screen(np.array(first.candidate.center_irc))
        assert x0 < u < x1 and y0 < v < y1
    axial = loaded.views[Plane.AXIAL]
    xs = axial.cross_h.segments()[0]
    u, _ = axial.layout_.to_screen(np.array(state.crosshair, dtype=float))
    gap = 0.5 * (xs[2] - xs[1])
    assert gap > 0.5 * first.candidate.diameter_mm  # the lines stop short of the lesion's edge
    assert gap == pytest.approx(axial.crosshair_gap_mm())
    assert "Long × short axis" in loaded.crop_panel.size_text.text()
    assert loaded.crop_panel.measurement is not None and loaded.crop_panel.measurement.volume_mm3 > 0
    assert loaded.crop_panel.measurement.long_axis_rc is not None  # drawn on the axial crop


def test_a_rulers_length_does_not_cover_a_findings_number(qtbot, loaded) -> None:
    detect_and_wait(qtbot, loaded)
    axial = loaded.views[Plane.AXIAL]
    axial.go_to_slice(12)  # finding 1: 10 mm at (12, 24, 20)
    qtbot.wait(20)
    numbers = axial.marker_layer.label_rects(axial.viewbox)
    assert numbers  # its number, at the circle's upper right
    number = next(label for label in axial.labels if label.isVisible())
    u, v = float(number.pos().x()), float(number.pos().y())
    a, b = axial.layout_.from_screen(u - 0.5, v + 0.5)  # the ruler's upper end just below-left of the number
    loaded.state.new_measurement(0, 12, (12.0, float(b), float(a)), (12.0, 34.0, 12.0))
    (label,) = [lab for lab in axial.measure_layer._labels if lab.isVisible()]
    rect = text_item_rect(label, axial.viewbox)
    assert not any(rect.intersects(r) for r in axial.marker_layer.label_rects(axial.viewbox))
    assert tuple(label.anchor) == (0.0, 0.0)  # moved below the ruler's lower end
    axial.zoom_to((12, 24, 20), 40.0)  # after a zoom the labels are laid out again, still apart
    rect = text_item_rect(label, axial.viewbox)
    assert not any(rect.intersects(r) for r in axial.marker_layer.label_rects(axial.viewbox))


def test_scale_bar_follows_the_zoom(qtbot, loaded) -> None:
    axial = loaded.views[Plane.AXIAL]
    bar = axial.canvas.scale_bar
    mm_per_px = axial._mm_per_px()[0]
    assert bar.length_mm == nice_scale_length(mm_per_px, bar.target_px) and bar.text().endswith(" mm")
    assert 0.4 * bar.target_px <= bar.bar_px <= 1.6 * bar.target_px
    canvas = axial.canvas
    assert bar.isVisible() and bar.width() < canvas.width() / 3 and bar.height() < 60  # its backing, not the view
    assert bar.geometry().right() == canvas.width() - 1 and bar.geometry().bottom() == canvas.height() - 1
    assert bar.width() >= bar.bar_px
    before = bar.length_mm
    axial.zoom_to((12, 24, 20), 5.0)
    assert bar.length_mm < before and bar.width() >= bar.bar_px
    assert nice_scale_length(0.1, 100) == 10.0 and nice_scale_length(0.37, 100) == 50.0
    with pytest.raises(ValueError):
        nice_scale_length(0.0)


def test_cine_plays_and_stops_at_the_end(qtbot, loaded) -> None:
    state, axial = loaded.state, loaded.views[Plane.AXIAL]
    assert next_cine_position(3, 5, loop=False) == 4 and next_cine_position(4, 5, loop=False) is None
    assert next_cine_position(4, 5, loop=True) == 0
    state.set_cine(fps=60, loop=False)
    axial.go_to_slice(20)
    loaded.actions_["cine"].trigger()
    assert state.cine_playing and loaded.cine.timer.isActive()
    qtbot.waitUntil(lambda: not state.cine_playing, timeout=3000)
    assert axial.slice_index == 23 and not loaded.actions_["cine"].isChecked()
    assert loaded.reading_tools.fps.value() == 60
    state.set_cine(loop=True)
    loaded.cine.play_in(Plane.AXIAL)
    qtbot.waitUntil(lambda: axial.slice_index < 20, timeout=3000)  # wrapped round to the bottom
    loaded.cine.play_in(None)
    assert not state.cine_playing


def test_view_text_has_a_dark_backing(qtbot, loaded) -> None:
    canvas = loaded.views[Plane.CORONAL].canvas
    for label in (canvas.info, canvas.window_text, *canvas.letters.values()):
        assert "background: rgba(0, 0, 0" in label.styleSheet() and label.isVisible()
        assert label.width() < canvas.width()  # fitted to its text, not a dark band
    assert canvas.info.geometry().top() >= 0 and canvas.info.height() >= 30
    assert QPoint(0, 0) != canvas.window_text.pos()


def test_go_to_finding_field_is_a_setting(qtbot, make_window, write_volume) -> None:
    from app.settings import AppSettings

    settings = AppSettings()
    assert settings.finding_fov_mm() == 60.0
    settings.set_finding_fov_mm(1000)
    assert settings.finding_fov_mm() == 300.0
    settings.set_finding_fov_mm(40)
    window = make_window(settings=settings)
    assert window.state.finding_fov_mm == 40.0
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    window.state.select(window.state.findings.findings[0].id)
    (x0, x1), (y0, y1) = window.views[Plane.AXIAL].viewbox.viewRange()
    assert min(x1 - x0, y1 - y0) == pytest.approx(40.0, rel=0.05)
