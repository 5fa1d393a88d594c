"""What the main window remembers between sessions: its layout, the W/L preset, the thresholds, the models.

Stored through :class:`~app.settings.AppSettings` (``$LUNGCAD_SETTINGS`` or
the user's settings): window geometry and dock state, both view splitters,
the last window/level preset, the finding thresholds, and the Models menu's
choice (restored by the menu itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: The thresholds that are remembered (fields of ``app.findings.Thresholds``).
REMEMBERED_THRESHOLDS = ("nodule", "near_miss_band", "malignancy")
#: Size of a window opened for the first time, px.
FIRST_SIZE = (1560, 960)


def restore_window(window: MainWindow) -> None:
    """Put back the saved layout, preset, thresholds and models (defaults where nothing was saved).

    Sets ``window.restored_geometry`` to whether a saved geometry was found.
    """
    s = window.settings
    geometry, dock_state, splitter, side = s.layout("geometry"), s.layout("state"), s.layout("views"), s.layout("side")
    window.restored_geometry = geometry is not None
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(*FIRST_SIZE)
    if dock_state is not None:
        window.restoreState(dock_state)
    if splitter is not None:
        window.view_splitter.restoreState(splitter)
    if side is not None:
        window.side_splitter.restoreState(side)
    name = s.last_preset()
    preset = next((p for p in window.presets if p.name == name), None)
    if preset is not None:
        window.state.set_window(preset.window)
    known = {k: v for k, v in s.thresholds().items() if k in REMEMBERED_THRESHOLDS}
    if known:
        window.state.set_thresholds(**known)
    window.models.restore()


def save_window(window: MainWindow) -> None:
    """Remember the layout and the thresholds (the preset and models are saved when chosen)."""
    s = window.settings
    s.set_layout("geometry", window.saveGeometry())
    s.set_layout("state", window.saveState())
    s.set_layout("views", window.view_splitter.saveState())
    s.set_layout("side", window.side_splitter.saveState())
    t = window.state.thresholds
    s.set_thresholds({name: getattr(t, name) for name in REMEMBERED_THRESHOLDS})
    s.sync()
