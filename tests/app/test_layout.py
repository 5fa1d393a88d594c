"""The layout holds: usable dock sizes, a roomy Training window apart from the review docks, broken saved layouts reset."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, Qt

from app.findings import Mark
from app.findings_panel import MIN_VISIBLE_ROWS
from app.training.panel import WIDE_MIN_WIDTH
from app.training.view import PLOT_MIN_HEIGHT, PLOT_MIN_WIDTH
from app.window_settings import unusable_docks
from tests.app.conftest import detect_and_wait, open_and_wait
from tests.app.layout_checks import clipped_texts, outside_parents


def _review_sizes(window) -> dict[str, tuple[int, int]]:
    return {name: (window.docks[name].width(), window.docks[name].height()) for name in ("cad", "findings", "candidate")}


def _table_rows_visible(window) -> float:
    table = window.findings_panel.table
    return table.viewport().height() / table.verticalHeader().defaultSectionSize()


def test_the_training_window_leaves_the_review_docks_alone(qtbot, make_window) -> None:
    window = make_window()
    window.resize(1500, 950)
    qtbot.wait(50)
    before = _review_sizes(window)
    assert _table_rows_visible(window) >= MIN_VISIBLE_ROWS and unusable_docks(window) == []
    training = window.training_window
    window.actions_["training"].trigger()  # Models ▸ Train a model (Ctrl+T)
    qtbot.waitUntil(training.isVisible)
    assert training.isWindow() and training.parent() is None  # its own window, not a dock kept above the viewer
    assert "training" not in window.docks and window.training_panel.window() is training
    assert window.actions_["training_window"].isChecked()
    qtbot.wait(50)
    assert _review_sizes(window) == before and unusable_docks(window) == []
    assert _table_rows_visible(window) >= MIN_VISIBLE_ROWS
    assert window.docks["candidate"].height() >= 190 and window.crop_panel.isVisible()
    training.close()  # hides it; the main window's layout is what it was
    qtbot.wait(50)
    assert not training.isVisible() and not window.actions_["training_window"].isChecked()
    assert _review_sizes(window) == before and unusable_docks(window) == []
    window.actions_["training_window"].trigger()  # View ▸ Training window
    assert training.isVisible()
    window.actions_["training_window"].trigger()
    assert not training.isVisible()


@pytest.mark.parametrize("size", [(1280, 820), (1120, 680), (760, 740)])
def test_the_training_window_gives_the_curves_room_and_clips_nothing(qtbot, make_window, size) -> None:
    window = make_window()
    window.show_training()
    training, panel = window.training_window, window.training_panel
    qtbot.waitUntil(training.isVisible)
    training.resize(*size)
    qtbot.wait(80)
    wide = size[0] >= WIDE_MIN_WIDTH
    assert (panel.splitter.orientation() == Qt.Orientation.Horizontal) == wide  # the form beside the run, or above it
    for title, plot in panel.view.plots.items():
        assert plot.width() >= PLOT_MIN_WIDTH - 2 and plot.height() >= PLOT_MIN_HEIGHT - 2, title
        assert plot.titleLabel.item.boundingRect().width() <= plot.width(), title
    assert not training.scroll.horizontalScrollBar().isVisible()  # nothing cut at the right edge
    for tab in range(panel.tabs.count()):  # New run and Runs
        panel.tabs.setCurrentIndex(tab)
        qtbot.wait(20)
        assert clipped_texts(training) == [], panel.tabs.tabText(tab)
    panel.tabs.setCurrentIndex(0)
    qtbot.wait(20)
    start = panel.form.start_button
    assert start.parentWidget().rect().contains(start.geometry()) and start.visibleRegion().boundingRect() == start.rect()
    if wide:  # room for the whole panel: no scrolling, every control wholly on screen
        assert not training.scroll.verticalScrollBar().isVisible()
        assert outside_parents(training) == []
        assert panel.view.log_view.height() >= 100


def test_the_training_window_survives_a_restart(qtbot, make_window) -> None:
    first = make_window()
    first.show_training()
    qtbot.waitUntil(first.training_window.isVisible)
    first.training_window.setGeometry(30, 40, 760, 700)  # within the offscreen screen (800×800)
    qtbot.wait(20)
    first.close()  # remembers its place and that it was open
    assert not first.training_window.isVisible()

    second = make_window()
    training = second.training_window
    assert second.training_restored
    qtbot.waitUntil(training.isVisible)  # open again, as it was left
    assert (training.width(), abs(training.height() - 700) <= 16) == (760, True)
    assert unusable_docks(second) == [] and _table_rows_visible(second) >= MIN_VISIBLE_ROWS
    training.close()
    second.close()
    third = make_window()
    qtbot.wait(50)
    assert not third.training_window.isVisible()


@pytest.mark.parametrize("blob", ["garbage", "older version", "tiny"])
def test_a_corrupted_saved_layout_is_reset(qtbot, make_window, blob) -> None:
    first = make_window()
    if blob == "tiny":  # a Training window squeezed to nothing
        first.show_training()
        first.training_window.setGeometry(10, 10, 200, 120)
    state = {"garbage": QByteArray(b"\x00\x00\x00\xffnot a Qt layout"), "older version": first.saveState(0)}
    first.close()  # saves a good layout
    if blob in state:
        first.settings.set_layout("state", state[blob])
        first.settings.set_layout("training", QByteArray(b"not a geometry either"))
    first.settings.sync()
    second = make_window()
    message = second.statusBar().currentMessage()
    assert second.training_restored is False and "reset" in message
    assert second.layout_restored is (blob == "tiny")
    assert all(second.docks[name].isVisible() for name in ("cad", "findings", "candidate"))
    assert unusable_docks(second) == []
    training = second.training_window
    second.show_training()
    qtbot.waitUntil(training.isVisible)
    assert training.size() == training.first_geometry().size() and training.usable()


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
    window.show_training()
    window.training_window.resize(730, 570)
    window.actions_["reset_layout"].trigger()
    qtbot.wait(30)
    assert not window.docks["findings"].isFloating() and window.docks["candidate"].isVisible()
    assert unusable_docks(window) == []
    training = window.training_window
    assert training.isVisible() and training.size() == training.first_geometry().size()


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


def test_the_findings_table_fits_its_dock_without_cutting_a_column(qtbot, make_window, write_volume) -> None:
    window = make_window()
    window.resize(1560, 960)  # the first size
    # far from the origin, so the LPS column holds its longest text ("-183.5, -181.5, -369.5")
    open_and_wait(qtbot, window, write_volume("far.mhd", origin_xyz=(-199.5, -199.5, -399.5)))
    detect_and_wait(qtbot, window)
    window.state.set_mark(1, Mark.ACCEPTED)  # "malignant ✓", the longest status
    table = window.findings_panel.table
    header = table.horizontalHeader()
    model = table.model()
    for sort_column in (2, 1, 7):  # the sort arrow's room moves with the sorted column
        header.setSortIndicator(sort_column, Qt.SortOrder.DescendingOrder)
        qtbot.wait(30)
        last = model.columnCount() - 1
        assert table.columnViewportPosition(last) + table.columnWidth(last) <= table.viewport().width()
        assert not table.horizontalScrollBar().isVisible()
        metrics = table.fontMetrics()
        for column in range(model.columnCount()):
            texts = [str(model.headerData(column, Qt.Orientation.Horizontal))]
            texts += [str(model.index(row, column).data()) for row in range(model.rowCount())]
            for text in texts:
                assert table.columnWidth(column) >= metrics.horizontalAdvance(text) + 6, (sort_column, text)
    assert "malignant ✓" in [model.index(row, 7).data() for row in range(model.rowCount())]
