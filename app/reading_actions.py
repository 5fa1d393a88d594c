"""The reading tools' window actions: ruler (M), thin slab (S, [ and ]), cine (Space), and their toolbar.

Built by :func:`app.window_menus.build_menus` into the View menu; each action
follows the state (checked, enabled with a volume open) so menu, toolbar and
keys always agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QToolBar

from app.cine import CineController
from app.planes import Plane
from app.reading_toolbar import ReadingToolsWidget
from app.slab import SlabMode

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: How much [ and ] change the slab thickness, mm.
THICKNESS_STEP_MM = 2.5


def focused_plane(window: MainWindow) -> Plane | None:
    """The plane whose view has the keyboard focus, or None."""
    for plane, view in window.views.items():
        if view.canvas.hasFocus():
            return plane
    return None


def build_reading_actions(window: MainWindow, menu: QMenu, add_action: Any) -> None:
    """Add the ruler, slab and cine actions to ``menu`` (the View menu) and start the cine controller.

    Args:
        window: The main window (``state``, ``views``, ``settings``, ``actions_``).
        menu: Where the actions go.
        add_action: :func:`app.window_menus.add_action`.
    """
    state = window.state
    state.finding_fov_mm = window.settings.finding_fov_mm()
    window.cine = CineController(state, window.views, window)

    def a(*args: Any, **kwargs: Any) -> QAction:
        return add_action(window, *args, **kwargs)

    menu.addAction(a("measure", "&Measure (ruler)", state.set_measure_mode, "M",
                     "Ruler tool: drag on a view to measure in mm; click a ruler to select it, Delete removes it",
                     checkable=True))
    menu.addAction(a("slab", "Thin &slab", lambda on: state.set_slab(enabled=on), "S",
                     "Show a thin-slab projection (MIP: vessels become lines, nodules stay dots)", checkable=True))
    modes = menu.addMenu("Slab &mode")
    group = QActionGroup(window)
    for mode in SlabMode:
        action = a(f"slab:{mode.value}", mode.label, lambda _c=False, m=mode: state.set_slab(mode=m), None,
                   f"Slab combines its slices by {mode.label}", checkable=True)
        group.addAction(action)
        modes.addAction(action)
    menu.addAction(a("slab_thicker", "Thicker slab", lambda: state.set_slab(thickness_mm=state.slab.thickness_mm
                                                                             + THICKNESS_STEP_MM), "]"))
    menu.addAction(a("slab_thinner", "Thinner slab", lambda: state.set_slab(thickness_mm=state.slab.thickness_mm
                                                                             - THICKNESS_STEP_MM), "["))
    menu.addAction(a("cine", "Play &cine", lambda _on: window.cine.play_in(focused_plane(window)), "Space",
                     "Play the slices of the focused view (axial by default); the speed is on the toolbar",
                     checkable=True))
    actions = window.actions_

    def sync() -> None:
        has_volume = state.volume is not None
        actions["measure"].setChecked(state.measure_mode)
        actions["slab"].setChecked(state.slab.enabled)
        actions[f"slab:{state.slab.mode.value}"].setChecked(True)
        actions["cine"].setChecked(state.cine_playing)
        for name in ("measure", "slab", "slab_thicker", "slab_thinner", "cine"):
            actions[name].setEnabled(has_volume)
        for view in window.views.values():
            if state.measure_mode:
                view.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)
            else:
                view.canvas.viewport().unsetCursor()

    for event in ("volume", "measurements", "slab", "cine"):
        state.subscribe(event, sync)
    sync()


def build_reading_toolbar(window: MainWindow, bar: QToolBar, twin: Any) -> None:
    """Toolbar twins of Measure, Slab and Cine, and the slab/cine settings widget."""
    bar.addSeparator()
    bar.addAction(twin(window, "measure", "Measure"))
    bar.addAction(twin(window, "slab", "Slab"))
    bar.addAction(twin(window, "cine", "Cine ▶"))
    window.reading_tools = ReadingToolsWidget(window.state)
    bar.addWidget(window.reading_tools)
