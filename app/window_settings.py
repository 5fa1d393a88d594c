"""The main window's dock layout, and what it remembers between sessions.

The layout holds: every dock has a usable minimum size (the findings table
shows ten rows, the close-up its three tiles), the bottom dock area lies under
the views only (the Training panel never squeezes the review docks on the
right), and the Training panel opens below the views, or floating when the
window is too short for it. A saved layout that Qt cannot restore, or that
comes back with docks below their minimum sizes, is replaced by the first
arrangement (:func:`reset_layout`, also View ▸ Reset layout).

Stored through :class:`~app.settings.AppSettings` (``$LUNGCAD_SETTINGS`` or
the user's settings): window geometry and dock state, both view splitters,
the last window/level preset, the finding thresholds, and the Models menu's
choice (restored by the menu itself).
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
DOCK_MINIMUM = {"cad": (340, 150), "findings": (400, 330), "candidate": (340, 190), "training": (560, 300)}
#: Height of the Training dock when it opens below the views, px.
TRAINING_DOCK_HEIGHT = 380
#: Height the views keep above the Training dock; a shorter window gets the Training panel floating.
MIN_VIEW_HEIGHT = 360


def dock_defaults(window: MainWindow) -> None:
    """Minimum sizes and corners, and the first arrangement of the docks (call once, after adding them)."""
    window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
    window.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
    for name, dock in window.docks.items():
        width, height = DOCK_MINIMUM.get(name, (200, 120))
        dock.widget().setMinimumSize(width, height)
    reset_layout(window)


def reset_layout(window: MainWindow) -> None:
    """The first arrangement: CAD, Findings and Selected finding on the right, Training hidden below the views."""
    docks = window.docks
    for dock in docks.values():
        dock.setFloating(False)
        window.removeDockWidget(dock)
    right = [docks[name] for name in ("cad", "findings", "candidate")]
    for dock in right:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock, Qt.Orientation.Vertical)
        dock.show()
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, docks["training"])
    docks["training"].hide()
    window.resizeDocks(right, [DOCK_WIDTH] * 3, Qt.Orientation.Horizontal)
    window.resizeDocks(right, [330, 460, 240], Qt.Orientation.Vertical)


def show_training_dock(window: MainWindow) -> None:
    """Show and raise the Training panel: below the views, or floating when the window is too short."""
    dock = window.docks["training"]
    first = dock.isHidden() and not dock.isFloating()
    size = window.size()
    room = window.centralWidget().height() - MIN_VIEW_HEIGHT
    if first and room < DOCK_MINIMUM["training"][1]:
        dock.setFloating(True)
        dock.resize(max(900, dock.widget().minimumWidth()), TRAINING_DOCK_HEIGHT + 200)
    dock.show()
    dock.raise_()
    if first and not dock.isFloating():
        window.resize(size)  # make room inside the window rather than growing it past the screen
        window.resizeDocks([dock], [max(DOCK_MINIMUM["training"][1], min(TRAINING_DOCK_HEIGHT, room))], Qt.Orientation.Vertical)


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

    Sets ``window.restored_geometry`` to whether a saved geometry was found and
    ``window.layout_restored`` to whether a saved dock layout was restored (a
    layout Qt cannot read is reset).
    """
    s = window.settings
    geometry, dock_state, splitter, side = s.layout("geometry"), s.layout("state"), s.layout("views"), s.layout("side")
    window.restored_geometry = geometry is not None
    # the docks first: which are shown decides how small the window may be
    window.layout_restored = dock_state is not None and window.restoreState(dock_state)
    if dock_state is not None and not window.layout_restored:
        reset_layout(window)  # a blob Qt cannot read: start from the first arrangement
        window.statusBar().showMessage("The saved window layout could not be read; it was reset.", 10000)
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
    s.set_layout("state", window.saveState())
    s.set_layout("views", window.view_splitter.saveState())
    s.set_layout("side", window.side_splitter.saveState())
    t = window.state.thresholds
    s.set_thresholds({name: getattr(t, name) for name in REMEMBERED_THRESHOLDS})
    s.sync()
