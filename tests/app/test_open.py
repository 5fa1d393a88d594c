"""Opening data: demo, files of each format, DICOM folders with a chooser, bad files, drag and drop."""

from __future__ import annotations


import numpy as np
import pytest
from numpy.testing import assert_array_equal
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.app.conftest import install_fake_demo, open_and_wait, small_hu
from tests.dicom_writer import write_dicom_series


def test_open_demo(qtbot, window, write_volume, monkeypatch, errors) -> None:
    path = write_volume("demo/demo_chest.mhd")
    reported = install_fake_demo(monkeypatch, path)
    with qtbot.waitSignal(window.loader.idle, timeout=15000):
        window.open_demo()
    assert errors == []
    assert reported == [0.0, 0.5, 1.0]
    assert window.state.volume is not None and window.state.volume.source_path == path
    assert window.settings.recent_files() == []  # the demo is not a "recent file"


def test_demo_unavailable_leaves_an_empty_viewer(qtbot, window, monkeypatch, errors) -> None:
    install_fake_demo(monkeypatch, None)
    with qtbot.waitSignal(window.loader.idle, timeout=15000):
        window.open_demo()
    assert window.state.volume is None
    assert len(errors) == 1 and "demo series is not available" in errors[0][1]


@pytest.mark.parametrize("name", ["scan.mhd", "scan.mha", "scan.nii", "scan.nii.gz", "scan.nrrd"])
def test_open_each_format(qtbot, window, write_volume, errors, name) -> None:
    path = write_volume(name)
    open_and_wait(qtbot, window, path)
    assert errors == []
    assert_array_equal(window.state.volume.hu, small_hu())
    assert window.views  # all three views show the centre slices
    assert [v.slice_index for v in window.views.values()] == [12, 24, 20]
    assert name in window.windowTitle()
    assert window.settings.recent_files()[0] == str(path.resolve())


def test_dicom_folder_with_two_series_asks_which(qtbot, window, tmp_path, monkeypatch, errors) -> None:
    hu = small_hu((6, 16, 16))
    write_dicom_series(tmp_path, hu, series_uid="1.2.3.1", description="thin", prefix="a")
    write_dicom_series(tmp_path, hu[:4] + 7, series_uid="1.2.3.2", description="thick", prefix="b")
    offered: list = []

    def choose(folder, series):
        offered.append((folder, [(s.uid, s.modality, s.description, s.slice_count) for s in series]))
        return "1.2.3.2"

    monkeypatch.setattr(window, "choose_series", choose)
    with qtbot.waitSignal(window.loader.loaded, timeout=20000):
        window.open_path(tmp_path)
    assert offered[0][0] == tmp_path
    assert sorted(offered[0][1]) == [("1.2.3.1", "CT", "thin", 6), ("1.2.3.2", "CT", "thick", 4)]
    assert window.state.volume.series_uid == "1.2.3.2"
    assert_array_equal(window.state.volume.hu, hu[:4] + 7)
    assert errors == []


def test_series_chooser_dialog_lists_the_series(qtbot, tmp_path) -> None:
    from app.dialogs import SeriesChooserDialog
    from engine.io.dicom import list_dicom_series

    hu = small_hu((5, 12, 12))
    write_dicom_series(tmp_path, hu, series_uid="1.2.3.1", description="thin", prefix="a")
    write_dicom_series(tmp_path, hu[:3], series_uid="1.2.3.2", description="thick", prefix="b", spacing_xyz=(0.7, 0.7, 5.0))
    dialog = SeriesChooserDialog(tmp_path, list_dicom_series(tmp_path))
    qtbot.addWidget(dialog)
    rows = {dialog.table.item(r, 4).text(): [dialog.table.item(r, c).text() for c in range(4)] for r in range(2)}
    assert rows == {"1.2.3.1": ["CT", "thin", "5", "2 mm"], "1.2.3.2": ["CT", "thick", "3", "5 mm"]}
    assert dialog.selected_uid() == "1.2.3.1"  # most slices first
    dialog.table.selectRow(1)
    assert dialog.selected_uid() == "1.2.3.2"


def test_cancelled_chooser_keeps_the_previous_volume(qtbot, window, write_volume, tmp_path, monkeypatch, errors) -> None:
    open_and_wait(qtbot, window, write_volume("first.mhd"))
    before = window.state.volume
    dicom = tmp_path / "dicom"
    write_dicom_series(dicom, small_hu((4, 8, 8)), series_uid="1.2.3.1", prefix="a")
    write_dicom_series(dicom, small_hu((3, 8, 8)), series_uid="1.2.3.2", prefix="b")
    monkeypatch.setattr(window, "choose_series", lambda folder, series: None)
    open_and_wait(qtbot, window, dicom)
    assert window.state.volume is before and errors == []


@pytest.mark.parametrize(
    ("make_bad", "problem"),
    [
        (lambda d: d / "missing.mhd", "no such file"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "unsupported file type"),
        (lambda d: (d / "broken.nii.gz").write_bytes(b"\x00" * 40) and d / "broken.nii.gz", "broken.nii.gz"),
    ],
)
def test_bad_file_shows_the_problem_and_keeps_the_previous_volume(
    qtbot, window, write_volume, tmp_path, errors, make_bad, problem
) -> None:
    good = write_volume("good.mhd")
    open_and_wait(qtbot, window, good)
    before = window.state.volume
    bad = make_bad(tmp_path)
    open_and_wait(qtbot, window, bad)
    assert window.state.volume is before
    assert len(errors) == 1
    title, text = errors[0]
    assert title == "Cannot open" and bad.name in text and problem in text.lower()
    assert "good.mhd" in window.windowTitle()


def test_truncated_raw_names_the_file(qtbot, window, write_volume, errors) -> None:
    path = write_volume("cut.mhd")
    raw = path.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:1000])
    open_and_wait(qtbot, window, path)
    assert window.state.volume is None
    assert len(errors) == 1 and "cut" in errors[0][1]


def test_drop_a_file_opens_it(qtbot, window, write_volume) -> None:
    path = write_volume("dropped.nii.gz")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPoint(10, 10).toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.loader.idle, timeout=15000):
        window.dropEvent(event)
    assert window.state.volume.source_path == path


def test_open_recent_menu_lists_opened_files(qtbot, window, write_volume) -> None:
    a, b = write_volume("a.mhd"), write_volume("b.nrrd")
    open_and_wait(qtbot, window, a)
    open_and_wait(qtbot, window, b)
    window.fill_recent_menu()
    texts = [act.text() for act in window.recent_menu.actions() if act.text()]
    assert texts[:2] == [str(b.resolve()), str(a.resolve())]
    with qtbot.waitSignal(window.loader.idle, timeout=15000):
        window.recent_menu.actions()[1].trigger()
    assert window.state.volume.source_path.name == "a.mhd"
    assert np.array_equal(window.state.volume.hu, small_hu())


def test_loading_runs_off_the_gui_thread_with_progress(qtbot, window, write_volume, monkeypatch) -> None:
    import threading

    import engine.io.ct

    threads: list[int] = []
    real_load = engine.io.ct.load_ct

    def recording_load(path, series_uid=None):
        threads.append(threading.get_ident())
        return real_load(path, series_uid)

    monkeypatch.setattr(engine.io.ct, "load_ct", recording_load)
    shown: list[bool] = []
    window.loader.progress.connect(lambda f, text: shown.append(window.load_progress.isVisible()))
    open_and_wait(qtbot, window, write_volume("threaded.mhd"))
    assert threads and threads[0] != threading.get_ident()
    assert shown and all(shown)  # the status-bar progress bar is up while loading
    assert not window.load_progress.isVisible()
