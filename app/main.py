"""Start the viewer: ``python main.py [PATH]`` (see ``main.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

#: Command-line options the GUI understands (everything else is a path).
RESET_SETTINGS = "--reset-settings"


def run_gui(argv: list[str]) -> int:
    """Open the main window on ``PATH`` (first argument) or the built-in demo series.

    Args:
        argv: The arguments after ``main.py``: an optional CT file or DICOM folder,
            and ``--reset-settings`` to forget remembered layout, recent files and
            thresholds.

    Returns:
        The application's exit status.
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import AppSettings
    from app.theme import apply_dark_theme
    from engine.paths import APP_NAME

    paths = [a for a in argv if not a.startswith("--")]
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    apply_dark_theme(app)
    settings = AppSettings()
    if RESET_SETTINGS in argv:
        settings.clear()
    window = MainWindow(settings=settings)
    if window.restored_geometry:
        window.show()
    else:
        window.showMaximized()  # first start: use the whole screen, as reading software does
    if paths:
        QTimer.singleShot(0, lambda: window.open_path(Path(paths[0])))
    else:
        QTimer.singleShot(0, window.open_demo)
    return int(app.exec())
