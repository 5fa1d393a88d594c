"""The main window's dock layout and the Training window's place, and what they remember between sessions.

The layout holds: every dock has a usable minimum size (the findings table
shows ten rows, the close-up its three tiles), and the Training panel is a
window of its own (:class:`~app.training.window.TrainingWindow`), so opening
or closing it never takes room from the views or the review docks. A saved
layout that Qt cannot restore (or one saved by a version with a Training
dock), or that comes back with docks below their minimum sizes, is replaced by
the first arrangement (:func:`reset_layout`, also View ▸ Reset layout, which
also puts the Training window back to its first size).

Stored through :class:`~app.settings.AppSettings` (``$LUNGCAD_SETTINGS`` or
the user's settings): window geometry and dock state, both view splitters,
the Training window's geometry and whether it was open, the last
window/level preset, the finding thresholds, and the Models menu's choice
(restored by the menu itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: The thresholds that are remembered (fields of ``app.findings.Thresholds``).
REMEMBERED_THRESHOLDS = ("nodule", "near_miss_band", "malignancy")
#: Size of a window opened for the first time, px.
FIRST_SIZE = (1560, 960)
#: Width of the right-hand dock column, px.
DOCK_WIDTH = 620
#: Smallest usable (width, height) of each dock, px.
DOCK_MINIMUM = {"cad": (340, 150), "findings": (400, 330), "candidate": (340, 190)}
#: Version of the saved dock state: 1 since the Training panel left the docks for its own window.
LAYOUT_VERSION = 1


def dock_defaults(window: MainWindow) -> None:
    """Minimum sizes and corners, and the first arrangement of the docks (call once, after adding them)."""
    window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
    window.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
    for name, dock in window.docks.items():
        width, height = DOCK_MINIMUM.get(name, (200, 120))
        dock.widget().setMinimumSize(width, height)
    reset_layout(window)


def reset_layout(window: MainWindow) -> None:
    """The first arrangement: CAD, Findings and Selected finding on the right; the Training window at its first size."""
    docks = window.docks
    for dock in docks.values():
        dock.setFloating(False)
        window.removeDockWidget(dock)
    right = [docks[name] for name in ("cad", "findings", "candidate")]
    for dock in right:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock, Qt.Orientation.Vertical)
        dock.show()
    window.resizeDocks(right, [DOCK_WIDTH] * 3, Qt.Orientation.Horizontal)
    window.resizeDocks(right, [330, 460, 240], Qt.Orientation.Vertical)
    window.training_window.reset_geometry(window.geometry() if window.isVisible() else None)


def unusable_docks(window: MainWindow) -> list[str]:
    """Names of visible, docked panels smaller than their minimum size (a broken layout)."""
    bad = []
    for name, dock in window.docks.items():
        if not dock.isVisible() or dock.isFloating():
            continue
        widget = dock.widget()
        if widget.width() < widget.minimumWidth() - 1 or widget.height() < widget.minimumHeight() - 1:
            bad.append(name)
    return bad


def check_layout(window: MainWindow) -> bool:
    """Reset the layout when a restored one left docks below their minimum sizes. True when it was fine."""
    bad = unusable_docks(window)
    if not bad:
        return True
    reset_layout(window)
    window.statusBar().showMessage(f"The saved window layout left panels too small ({', '.join(bad)}); it was reset.", 10000)
    return False


def restore_window(window: MainWindow) -> None:
    """Put back the saved layout, preset, thresholds and models (defaults where nothing was saved).

    Sets ``window.restored_geometry`` to whether a saved geometry was found,
    ``window.layout_restored`` to whether a saved dock layout was restored (a
    layout Qt cannot read is reset), ``window.training_restored`` to whether the
    Training window's saved geometry was used, and ``window.reopen_training``
    to whether that window was open at the last close.
    """
    s = window.settings
    geometry, dock_state, splitter, side = s.layout("geometry"), s.layout("state"), s.layout("views"), s.layout("side")
    window.restored_geometry = geometry is not None
    # the docks first: which are shown decides how small the window may be
    window.layout_restored = dock_state is not None and window.restoreState(dock_state, LAYOUT_VERSION)
    if dock_state is not None and not window.layout_restored:
        reset_layout(window)  # a blob Qt cannot read, or an older version's: start from the first arrangement
        window.statusBar().showMessage("The saved window layout could not be read; it was reset.", 10000)
    training = s.layout("training")
    window.training_restored = window.training_window.restore(training)
    if training is not None and not window.training_restored:
        window.statusBar().showMessage("The Training window's saved place could not be used; it was reset.", 10000)
    #: Shown again once the viewer is on screen (``MainWindow.showEvent``).
    window.reopen_training = s.training_window_open()
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(*FIRST_SIZE)
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
    s.set_layout("state", window.saveState(LAYOUT_VERSION))
    s.set_layout("training", window.training_window.saveGeometry())
    s.set_training_window_open(window.training_window.isVisible())
    s.set_layout("views", window.view_splitter.saveState())
    s.set_layout("side", window.side_splitter.saveState())
    t = window.state.thresholds
    s.set_thresholds({name: getattr(t, name) for name in REMEMBERED_THRESHOLDS})
    s.sync()
