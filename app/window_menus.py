"""The main window's actions: the menus, the toolbar, and which actions are enabled.

Every command of the window is one named ``QAction`` (``window.actions_[name]``)
with its shortcut and status tip, created here in menu order; the toolbar shows
short-text twins of some of them. :func:`update_actions` enables each action
from the state (a volume, a result, a selection, a running Detect).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from app.dialogs import show_about
from app.findings import Mark
from app.models_menu import ModelsMenu
from app.server_settings import DetectTargetMenu
from app.reading_actions import build_reading_actions, build_reading_toolbar

if TYPE_CHECKING:
    from app.main_window import MainWindow


def add_action(
    window: MainWindow,
    name: str,
    text: str,
    slot: Any,
    shortcut: str | QKeySequence.StandardKey | None = None,
    tip: str = "",
    checkable: bool = False,
) -> QAction:
    """A window-wide action, registered as ``window.actions_[name]``.

    Args:
        window: The main window.
        name: Key in ``window.actions_``.
        text: Menu text (``&`` marks the mnemonic).
        slot: Called when the action is triggered.
        shortcut: Key sequence, active anywhere in the window.
        tip: Status-bar tip.
        checkable: A toggle.
    """
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    window.addAction(action)
    window.actions_[name] = action
    return action


def build_menus(window: MainWindow) -> None:
    """File, View, Analysis, Models and Help, the toolbar, and ``window.models`` (the Models menu)."""

    def a(*args: Any, **kwargs: Any) -> QAction:
        return add_action(window, *args, **kwargs)

    file = window.menu("&File")
    file.addAction(a("open", "&Open…", window.ask_open_file, QKeySequence.StandardKey.Open, "Open a CT file (.mhd, .mha, NIfTI, NRRD)"))
    file.addAction(a("open_dicom", "Open &DICOM folder…", window.ask_open_dicom, "Ctrl+Shift+O", "Open a DICOM series folder"))
    window.recent_menu = file.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(window.fill_recent_menu)
    file.addAction(a("demo", "Load d&emo series", window.open_demo, None, "Open the built-in synthetic chest CT"))
    file.addSeparator()
    file.addAction(a("export_report", "Export &report (PDF)…", lambda: window.export("pdf"), "Ctrl+Shift+R",
                     "A PDF of the series, the models and the accepted findings with key images"))
    file.addAction(a("export_csv", "Export findings as LUNA16 &CSV…", lambda: window.export("csv")))
    file.addAction(a("export_json", "Export findings as &JSON…", lambda: window.export("json")))
    file.addAction(a("snapshot", "Save &snapshot (PNG)…", lambda: window.export("png"), "Ctrl+Shift+S"))
    file.addSeparator()
    file.addAction(a("quit", "&Quit", window.close, QKeySequence.StandardKey.Quit))

    view = window.menu("&View")
    presets = view.addMenu("Window/level &presets")
    for preset in window.presets:
        action = a(f"preset:{preset.name}", f"{preset.name}  (W {preset.window.width:.0f} / L {preset.window.level:.0f})",
                   lambda _c=False, p=preset: window.apply_preset(p), preset.key or None)
        presets.addAction(action)
    view.addAction(a("reset_view", "&Reset view", window.reset_views, "R", "Fit all three views (undo zoom and pan)"))
    view.addAction(a("crosshair", "Show &crosshair", window.show_crosshair, "C", checkable=True))
    window.actions_["crosshair"].setChecked(True)
    view.addSeparator()
    view.addAction(a("hide_cad", "&Hide CAD marks", window.state.set_hide_cad, "H", "Hide markers and overlay", checkable=True))
    view.addAction(a("overlay", "Segmentation &overlay", window.show_overlay, "O", checkable=True))
    view.addSeparator()
    build_reading_actions(window, view, add_action)
    view.addSeparator()
    for dock in window.docks.values():
        view.addAction(dock.toggleViewAction())
    view.addAction(a("training_window", "&Training window", window.set_training_shown, None,
                     "The Training panel in its own window (a run goes on when it is closed)", checkable=True))
    window.training_window.visibility_changed.connect(window.actions_["training_window"].setChecked)
    view.addAction(a("reset_layout", "Reset &layout", window.reset_layout, None, "Put the panels back where they started"))

    analysis = window.menu("&Analysis")
    findings = window.findings_panel
    analysis.addAction(a("detect", "&Detect", window.run_detect, "Ctrl+D", "Find nodule candidates in the open series"))
    analysis.addAction(a("cancel", "&Cancel detection", window.detector.cancel, "Esc"))
    analysis.addSeparator()
    analysis.addAction(a("next", "&Next finding", lambda: findings.step(+1), "N"))
    analysis.addAction(a("previous", "&Previous finding", lambda: findings.step(-1), "P"))
    analysis.addAction(a("accept", "&Accept finding", lambda: findings.mark_selected(Mark.ACCEPTED), "A"))
    analysis.addAction(a("reject", "Re&ject finding", lambda: findings.mark_selected(Mark.REJECTED), "X"))
    analysis.addAction(a("clear_mark", "C&lear review mark", lambda: findings.mark_selected(None), "U"))

    build_toolbar(window)

    models = window.menu("&Models")
    window.models = ModelsMenu(window, models, window.provider, window.settings, window.pool,
                               drive_provider=window.models_drive_detect)
    window.detect_target = DetectTargetMenu(window, models)
    models.addSeparator()
    models.addAction(a("training", "&Train a model…", window.show_training, "Ctrl+T", "Show the Training window"))
    window.training_panel.form.suggest_finetune = window.models.classifier_checkpoint

    help_menu = window.menu("&Help")
    help_menu.addAction(a("shortcuts", "&Keyboard shortcuts", window.show_shortcuts, QKeySequence.StandardKey.HelpContents))
    help_menu.addAction(a("about", "&About LungCAD", lambda: show_about(window)))


def build_toolbar(window: MainWindow) -> None:
    """The main toolbar: open, presets, reset, Detect, Hide CAD (twins of the menu actions)."""
    bar = window.addToolBar("Main")
    bar.setObjectName("mainToolBar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for name, text in (("open", "Open"), ("open_dicom", "DICOM"), ("demo", "Demo")):
        bar.addAction(toolbar_twin(window, name, text))
    bar.addSeparator()
    for preset in window.presets:
        bar.addAction(toolbar_twin(window, f"preset:{preset.name}", preset.name))
    bar.addAction(toolbar_twin(window, "reset_view", "Reset view"))
    bar.addSeparator()
    bar.addAction(toolbar_twin(window, "detect", "Detect"))
    bar.addAction(toolbar_twin(window, "hide_cad", "Hide CAD"))
    build_reading_toolbar(window, bar, toolbar_twin)


def toolbar_twin(window: MainWindow, name: str, text: str) -> QAction:
    """A toolbar twin of an action: short text, same behaviour, state and shortcut in the tooltip."""
    action = window.actions_[name]
    twin = QAction(text, window)
    twin.setCheckable(action.isCheckable())
    shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    twin.setToolTip(action.text().replace("&", "") + (f" ({shortcut})" if shortcut else ""))
    twin.triggered.connect(action.trigger)
    action.changed.connect(lambda: (twin.setEnabled(action.isEnabled()), twin.setChecked(action.isChecked())))
    return twin


def update_actions(window: MainWindow) -> None:
    """Enable each action from the state: a volume to detect on, a result to export, a finding to review."""
    state, actions = window.state, window.actions_
    has_volume = state.volume is not None
    has_result = state.result is not None
    busy = window.detector.busy
    actions["detect"].setEnabled(has_volume and not busy)
    actions["cancel"].setEnabled(busy)
    for name in ("export_csv", "export_json", "export_report"):
        actions[name].setEnabled(has_result)
    actions["snapshot"].setEnabled(has_volume)
    reviewing = has_result and not state.hide_cad
    selected = state.selected_id is not None and reviewing
    for name in ("accept", "reject", "clear_mark"):
        actions[name].setEnabled(selected)
    for name in ("next", "previous"):
        actions[name].setEnabled(reviewing and bool(state.findings.findings))


def shortcut_list(actions: dict[str, QAction]) -> list[tuple[str, str]]:
    """Every action with a shortcut, as ``(keys, text)``, for Help."""
    keys = []
    for action in actions.values():
        sequence = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if sequence:
            keys.append((sequence, action.text().replace("&", "")))
    return keys
