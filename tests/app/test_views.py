"""Looking at the CT: linked crosshair, scrolling, zoom/pan, presets, right-drag W/L, readout, mm aspect."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from PySide6.QtCore import Qt

from app.planes import Plane
from app.windowing import WindowLevel
from engine.geometry import irc_to_xyz
from tests.app.conftest import open_and_wait
from tests.app.qt_input import drag, hover, view_point, wheel


@pytest.fixture
def loaded(qtbot, window, write_volume):
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    qtbot.wait(20)
    return window


def test_click_moves_the_crosshair_and_links_all_views(qtbot, loaded) -> None:
    axial, coronal, sagittal = (loaded.views[p] for p in Plane)
    target = (12, 10, 30)
    qtbot.mouseClick(axial.canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_point(axial, target))
    assert loaded.state.crosshair == target
    assert (axial.slice_index, coronal.slice_index, sagittal.slice_index) == target
    u, v = coronal.layout_.to_screen(np.array(target, dtype=float))
    assert_allclose(coronal.cross_v.segments()[0][0], u)  # the coronal view's vertical line is at the sagittal plane
    assert_allclose(coronal.cross_h.segments()[1][0], v)
    # a click in the coronal view moves the axial slice
    qtbot.mouseClick(coronal.canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_point(coronal, (5, 10, 7)))
    assert loaded.state.crosshair == (5, 10, 7) and axial.slice_index == 5


def test_wheel_keys_and_slider_scroll(qtbot, loaded) -> None:
    axial = loaded.views[Plane.AXIAL]
    viewport = axial.canvas.viewport()
    start = axial.slice_index
    wheel(viewport, viewport.rect().center(), +2)
    assert axial.slice_index == start + 2  # index increases towards superior for this volume
    axial.canvas.setFocus()
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Down)
    assert axial.slice_index == start + 1
    qtbot.keyClick(axial.canvas, Qt.Key.Key_PageDown)
    assert axial.slice_index == start + 1 - 10
    qtbot.keyClick(axial.canvas, Qt.Key.Key_End)
    assert axial.slice_index == 23
    axial.slider.setValue(3)
    assert axial.slice_index == 3 and loaded.state.crosshair[0] == 3
    assert axial.slice_text.text() == "4/24"
    coronal = loaded.views[Plane.CORONAL]  # coronal scrolls "up" towards anterior = lower row index
    before = coronal.slice_index
    coronal.scroll(1)
    assert coronal.slice_index == before - 1


def test_ctrl_wheel_zooms_middle_drag_pans_and_reset(qtbot, loaded) -> None:
    axial = loaded.views[Plane.AXIAL]
    viewport = axial.canvas.viewport()
    (x0, x1), _ = axial.viewbox.viewRange()
    slice_before = axial.slice_index
    wheel(viewport, viewport.rect().center(), +3, Qt.KeyboardModifier.ControlModifier)
    (z0, z1), _ = axial.viewbox.viewRange()
    assert z1 - z0 < 0.9 * (x1 - x0) and axial.slice_index == slice_before
    centre = viewport.rect().center()
    drag(viewport, Qt.MouseButton.MiddleButton, centre, centre + centre * 0 + type(centre)(60, 0))
    (p0, p1), _ = axial.viewbox.viewRange()
    assert p0 < z0 - 1.0 and p1 - p0 == pytest.approx(z1 - z0, rel=1e-3)  # content moved right: the range moved left
    assert loaded.state.crosshair == (12, 24, 20)  # panning did not move the crosshair
    loaded.actions_["reset_view"].trigger()
    (r0, r1), (s0, s1) = axial.viewbox.viewRange()
    assert r0 <= 0.0 and r1 >= axial.layout_.width_mm and s0 <= 0.0 and s1 >= axial.layout_.height_mm


def test_presets_set_the_expected_levels(qtbot, loaded) -> None:
    expected = {"Lung": (-1350, 150), "Mediastinum": (-135, 215), "Bone": (-500, 1300), "Brain": (0, 80)}
    for name, levels in expected.items():
        loaded.actions_[f"preset:{name}"].trigger()
        for view in loaded.views.values():
            assert_allclose(view.image.levels, levels)
        assert loaded.views[Plane.AXIAL].canvas.window_text.text() == loaded.state.window.label()
    assert [loaded.actions_[f"preset:{n}"].shortcut().toString() for n in expected] == ["1", "2", "3", "4"]
    assert loaded.settings.last_preset() == "Brain"


def test_preset_key_works_from_the_view(qtbot, loaded) -> None:
    loaded.activateWindow()
    axial = loaded.views[Plane.AXIAL]
    axial.canvas.setFocus()
    qtbot.keyClick(axial.canvas, Qt.Key.Key_3)
    assert loaded.state.window == WindowLevel(1800, 400)


def test_right_drag_changes_window_level_only_through_set_levels(qtbot, loaded, monkeypatch) -> None:
    axial = loaded.views[Plane.AXIAL]
    loaded.actions_["preset:Mediastinum"].trigger()
    calls = {"setImage": 0, "setLevels": 0}  # setImage: calls that pass new pixels
    for name in calls:
        original = getattr(axial.image, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            if _name == "setLevels" or (args and args[0] is not None) or kwargs.get("image") is not None:
                calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(axial.image, name, counting)
    viewport = axial.canvas.viewport()
    centre = viewport.rect().center()
    drag(viewport, Qt.MouseButton.RightButton, centre, centre + type(centre)(100, 0))
    wider = loaded.state.window
    assert wider.width > 350 + 50 and wider.level == pytest.approx(40)
    drag(viewport, Qt.MouseButton.RightButton, centre, centre + type(centre)(0, 80))
    lower = loaded.state.window
    assert lower.level > 40 + 20 and lower.width == pytest.approx(wider.width)
    assert calls["setImage"] == 0 and calls["setLevels"] > 2
    assert_allclose(axial.image.levels, lower.levels)
    assert loaded.state.crosshair == (12, 24, 20)


def test_readout_under_the_cursor_matches_the_volume(qtbot, loaded) -> None:
    ct = loaded.state.volume
    sagittal = loaded.views[Plane.SAGITTAL]
    voxel = (7, 30, 20)  # on the sagittal slice through the crosshair (col 20)
    hover(sagittal.canvas.viewport(), view_point(sagittal, voxel))
    qtbot.waitUntil(lambda: loaded.readout_label.text() != "", timeout=3000)
    text = loaded.readout_label.text()
    x, y, z = irc_to_xyz(ct.geometry, voxel)
    assert f"HU {int(ct.hu[voxel]):>5d}" in text
    assert "voxel (i,r,c) 7, 30, 20" in text
    assert f"x {x:.1f}  y {y:.1f}  z {z:.1f}" in text and "LPS mm" in text


def test_views_are_in_mm_with_orientation_letters(qtbot, loaded) -> None:
    coronal = loaded.views[Plane.CORONAL]
    rect = coronal.image.mapRectToView(coronal.image.boundingRect())
    assert_allclose([rect.left(), rect.top(), rect.width(), rect.height()], [0, 0, 40 * 0.8, 24 * 2.5])
    letters = {p: tuple(lab.text() for lab in loaded.views[p].canvas.letters.values()) for p in Plane}
    assert letters == {
        Plane.AXIAL: ("R", "L", "A", "P"),
        Plane.CORONAL: ("R", "L", "S", "I"),
        Plane.SAGITTAL: ("A", "P", "S", "I"),
    }
    assert loaded.views[Plane.AXIAL].image.image.dtype == np.float32  # display copy, not int16


def test_flipped_volume_keeps_patient_right_on_screen_left(qtbot, window, write_volume) -> None:
    hu = np.full((6, 10, 12), -1000, dtype=np.int16)
    hu[:, :, :3] = 500  # bright on the low-column side
    path = write_volume("flipped.mhd", hu=hu, direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))  # columns run towards patient right
    open_and_wait(qtbot, window, path)
    axial = window.views[Plane.AXIAL]
    # x = origin - col * spacing: low columns lie towards the patient's left, so on the screen's right
    shown = axial.image.mapRectToView(axial.image.boundingRect())
    u_bright, _ = axial.layout_.to_screen(np.array([0.0, 5.0, 1.0]))
    assert u_bright > shown.left() + shown.width() / 2
    assert tuple(lab.text() for lab in axial.canvas.letters.values()) == ("R", "L", "A", "P")


def test_readout_clears_when_the_mouse_leaves(qtbot, loaded) -> None:
    axial = loaded.views[Plane.AXIAL]
    hover(axial.canvas.viewport(), view_point(axial, (12, 20, 20)))
    qtbot.waitUntil(lambda: loaded.readout_label.text() != "", timeout=3000)
    axial.mouse_left()
    assert loaded.readout_label.text() == ""


def test_crosshair_can_be_hidden(qtbot, loaded) -> None:
    loaded.actions_["crosshair"].trigger()
    assert not any(v.cross_h.isVisible() or v.cross_v.isVisible() for v in loaded.views.values())
    loaded.actions_["crosshair"].trigger()
    assert all(v.cross_h.isVisible() and v.cross_v.isVisible() for v in loaded.views.values())
    # the crosshair leaves a gap around its centre so it never covers what it points at
    axial = loaded.views[Plane.AXIAL]
    xs = axial.cross_h.segments()[0]
    u, _ = axial.layout_.to_screen(np.array(loaded.state.crosshair, dtype=float))
    assert xs[1] < u < xs[2] and xs[2] - xs[1] == pytest.approx(20.0)
