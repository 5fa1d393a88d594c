"""The dock layout holds: usable minimum sizes, the Training panel beside the review, broken saved layouts reset."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt

from app.findings import Mark
from app.findings_panel import MIN_VISIBLE_ROWS
from app.window_settings import unusable_docks
from tests.app.conftest import detect_and_wait, open_and_wait


def _review_sizes(window) -> dict[str, tuple[int, int]]:
    return {name: (window.docks[name].width(), window.docks[name].height()) for name in ("cad", "findings", "candidate")}


def _table_rows_visible(window) -> float:
    table = window.findings_panel.table
    return table.viewport().height() / table.verticalHeader().defaultSectionSize()


def test_training_panel_does_not_crush_the_review_docks(qtbot, make_window) -> None:
    window = make_window()
    window.resize(1500, 950)
    qtbot.wait(50)
    before = _review_sizes(window)
    assert _table_rows_visible(window) >= MIN_VISIBLE_ROWS and unusable_docks(window) == []
    window.actions_["training"].trigger()
    qtbot.waitUntil(lambda: window.docks["training"].isVisible())
    qtbot.wait(50)
    during = _review_sizes(window)
    assert unusable_docks(window) == []
    assert _table_rows_visible(window) >= MIN_VISIBLE_ROWS
    assert window.docks["candidate"].height() >= 190 and window.crop_panel.isVisible()
    if not window.docks["training"].isFloating():  # below the views: the right column keeps its height
        assert all(abs(during[k][1] - before[k][1]) <= 2 for k in before)
    window.docks["training"].close()
    qtbot.wait(50)
    after = _review_sizes(window)
    assert all(abs(after[k][1] - before[k][1]) <= 2 for k in before)  # no empty or shrunken dock left behind
    assert unusable_docks(window) == []


def test_a_corrupted_saved_layout_is_reset(qtbot, make_window) -> None:
    first = make_window()
    first.close()  # saves a good layout
    first.settings.set_layout("state", QByteArray(b"\x00\x00\x00\xffnot a Qt layout"))
    first.settings.sync()
    second = make_window()
    assert second.layout_restored is False
    assert "layout" in second.statusBar().currentMessage()
    assert all(second.docks[name].isVisible() for name in ("cad", "findings", "candidate"))
    assert not second.docks["training"].isVisible()
    assert unusable_docks(second) == []


def test_a_squeezed_saved_layout_is_reset(qtbot, make_window) -> None:
    first = make_window()
    first.docks["findings"].widget().setMinimumSize(0, 0)
    first.resizeDocks([first.docks["findings"], first.docks["cad"]], [20, 900], Qt.Orientation.Vertical)
    qtbot.wait(30)
    first.close()
    second = make_window()
    qtbot.wait(50)
    assert unusable_docks(second) == [] and _table_rows_visible(second) >= MIN_VISIBLE_ROWS


def test_view_reset_layout(qtbot, make_window) -> None:
    window = make_window()
    window.docks["findings"].setFloating(True)
    window.docks["candidate"].hide()
    window.actions_["reset_layout"].trigger()
    qtbot.wait(30)
    assert not window.docks["findings"].isFloating() and window.docks["candidate"].isVisible()
    assert unusable_docks(window) == []


def test_review_survives_re_detect_and_restart_in_the_window(qtbot, make_window, write_volume, fake_detector) -> None:
    window = make_window()
    path = write_volume("ct.mhd")
    open_and_wait(qtbot, window, path)
    detect_and_wait(qtbot, window)
    window.state.set_mark(1, Mark.ACCEPTED)
    window.state.set_mark(2, Mark.REJECTED)
    asked: list[list[str]] = []
    window.confirm_discard_review = lambda lost: asked.append(list(lost)) or False
    detect_and_wait(qtbot, window)  # same lesions: every verdict carries over, nothing is asked
    assert asked == [] and window.state.marks == {1: Mark.ACCEPTED, 2: Mark.REJECTED}
    before = window.state.result
    fake_detector.specs = fake_detector.specs[:1] + fake_detector.specs[2:]  # lesion 2 is no longer found
    detect_and_wait(qtbot, window)
    assert len(asked) == 1 and len(asked[0]) == 1 and "rejected" in asked[0][0]
    assert window.state.result is before  # "keep" keeps the previous result and its whole review
    assert window.state.marks == {1: Mark.ACCEPTED, 2: Mark.REJECTED}
    window.confirm_discard_review = lambda lost: True
    detect_and_wait(qtbot, window)
    assert window.state.marks == {1: Mark.ACCEPTED} and len(window.state.result.candidates) == 3
    window.close()

    second = make_window()  # a restart: same user data folder
    open_and_wait(qtbot, second, path)
    assert second.state.marks == {}
    detect_and_wait(qtbot, second)
    assert second.state.marks == {1: Mark.ACCEPTED}
