"""What the main window needs to open a series: the folder to start in, the recent-files menu,
which dropped file or folder can be opened, and the lines shown once a series is open.

Plain functions over the settings, a menu and the loaded CT, so that
:class:`app.main_window.MainWindow` keeps only the wiring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QMenu

from app.settings import AppSettings
from engine.io.ct import VOLUME_SUFFIXES
from engine.io.volume import CtVolume

#: File ▸ Open's filter.
OPEN_FILTER = "CT volumes (*.mhd *.mha *.nii *.nii.gz *.nrrd *.nhdr);;All files (*)"


def last_folder(settings: AppSettings) -> str:
    """The folder the open dialogs start in: the most recent file's (or the home folder)."""
    recent = settings.recent_files()
    if not recent:
        return str(Path.home())
    path = Path(recent[0])
    return str(path if path.is_dir() else path.parent)


def fill_recent_menu(menu: QMenu, settings: AppSettings, open_path: Callable[[str], object]) -> None:
    """File ▸ Open Recent: one entry per recent file, "(none)", and Clear list."""
    menu.clear()
    recent = settings.recent_files()
    for path in recent:
        menu.addAction(path, lambda p=path: open_path(p))
    if not recent:
        menu.addAction("(none)").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear list", settings.clear_recent_files)


def dropped_path(mime: QMimeData) -> Path | None:
    """The first dropped local folder or CT file (volume suffixes, ``.dcm``); None when nothing can be opened."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.is_dir() or any(path.name.lower().endswith(s) for s in VOLUME_SUFFIXES + (".dcm",)):
                return path
    return None


def opened_texts(ct: CtVolume, name: str) -> tuple[str, str, str, int]:
    """``(series label, its tooltip, status message, message milliseconds)`` for a series just opened."""
    sx, sy, sz = ct.geometry.spacing_xyz
    nz, ny, nx = ct.shape
    label = f"{nx}×{ny}×{nz}  {sx:.2f}×{sy:.2f}×{sz:.2f} mm"
    tooltip = f"{ct.source_path}\nseries {ct.series_uid}"
    notes = list(ct.notes) + [f"warning: {w}" for w in ct.warnings]
    message = f"Opened {name}" + (f" — {'; '.join(notes)}" if notes else "")
    return label, tooltip, message, 15000 if notes else 5000
