"""Settings remembered across restarts, kept away from the user's real settings."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt

from app.settings import MAX_RECENT, AppSettings
from app.windowing import WindowLevel
from tests.app.conftest import open_and_wait


def test_tests_use_an_isolated_settings_file(_isolated_settings: Path) -> None:
    settings = AppSettings()
    assert Path(settings.location) == _isolated_settings
    assert os.environ["LUNGCAD_DATA_DIR"] != ""  # tests/conftest.py isolates the data folder too


def test_recent_files_list(tmp_path: Path) -> None:
    settings = AppSettings(tmp_path / "s.ini")
    files = []
    for k in range(MAX_RECENT + 2):
        f = tmp_path / f"f{k}.mhd"
        f.write_text("x")
        files.append(f)
        settings.add_recent_file(f)
    settings.add_recent_file(files[3])  # re-opening moves it to the top, without a duplicate
    recent = settings.recent_files()
    assert recent[0] == str(files[3].resolve()) and len(recent) == MAX_RECENT and len(set(recent)) == MAX_RECENT
    files[-1].unlink()
    assert str(files[-1].resolve()) not in settings.recent_files()  # deleted files are not offered
    settings.clear_recent_files()
    assert settings.recent_files() == []


def test_broken_entries_fall_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    path.write_text("[display]\nthresholds=not json\n[models]\nlast=[1, 2]\n")
    settings = AppSettings(path)
    assert settings.thresholds() == {} and settings.last_models() == {}


def test_everything_is_remembered_across_restarts(qtbot, make_window, write_volume) -> None:
    first = make_window()
    path = write_volume("ct.mhd")
    open_and_wait(qtbot, first, path)
    first.actions_["preset:Mediastinum"].trigger()
    first.detection_panel.nodule_slider.slider.setValue(65)
    first.detection_panel.band_slider.slider.setValue(10)
    first.docks["candidate"].hide()
    qtbot.wait(20)  # the window's minimum height (the docks' minimum sizes) follows on the next layout pass
    first.resize(770, 690)  # within the offscreen screen (800×800): restoreGeometry keeps windows on screen
    first.view_splitter.setSizes([700, 300])
    first.settings.set_last_models({"segmentation": "segmentation:abc"})
    sizes, size = first.view_splitter.sizes(), (first.width(), first.height())
    first.close()

    second = make_window(resize=False)
    assert second.settings.recent_files() == [str(path.resolve())]
    assert second.state.window == WindowLevel(350, 40)
    t = second.state.thresholds
    assert (t.nodule, t.near_miss_band) == (0.65, 0.10)
    assert second.detection_panel.nodule_slider.value() == 0.65
    assert not second.docks["candidate"].isVisible() and second.docks["findings"].isVisible()
    assert second.width() == size[0] and abs(second.height() - size[1]) <= 16  # offscreen screen clamps a little
    assert second.view_splitter.sizes() == sizes
    assert second.settings.last_models() == {"segmentation": "segmentation:abc"}


def test_reset_settings(tmp_path: Path) -> None:
    settings = AppSettings(tmp_path / "s.ini")
    settings.set_last_preset("Bone")
    settings.clear()
    assert AppSettings(tmp_path / "s.ini").last_preset() is None


def test_help_lists_shortcuts_and_about_says_not_for_clinical_use(qtbot, window, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.dialogs import ABOUT_TEXT, shortcuts_html

    keys = dict(window.shortcut_list())
    for key, text in (("Ctrl+D", "Detect"), ("N", "Next finding"), ("H", "Hide CAD marks"), ("1", "Lung")):
        assert keys[key].startswith(text)
    html = shortcuts_html(window.shortcut_list())
    assert "Right drag" in html and "Ctrl + wheel" in html and "Ctrl+D" in html
    assert "Not for clinical use" in ABOUT_TEXT
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window.actions_["about"].trigger()
    assert shown and "Not for clinical use" in shown[0]


def test_dark_theme(qtbot) -> None:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from app.theme import apply_dark_theme

    app = QApplication.instance()
    old_palette, old_sheet = app.palette(), app.styleSheet()
    try:
        apply_dark_theme(app)
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 60
        assert app.palette().color(QPalette.ColorRole.WindowText).lightness() > 200
    finally:
        app.setPalette(old_palette)
        app.setStyleSheet(old_sheet)
    assert Qt.ShortcutContext.WindowShortcut  # shortcuts are window-wide (see app.window_menus.add_action)
