"""The main window: three linked views, the CAD and findings docks, menus, status bar.

The window wires widgets, controllers and the state together; it holds no
viewing state itself. Docks are ordinary ``QDockWidget``\\ s; the actions,
menus and toolbar are built in :mod:`app.window_menus`, and what the window
remembers is in :mod:`app.window_settings`, the opening helpers (recent files,
drops) in :mod:`app.window_open`. Later panels are added with
:meth:`MainWindow.add_dock` and :meth:`MainWindow.menu`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QWidget,
)

from app.controllers import DetectController, LoadController
from app.crop_preview import CropPreviewPanel
from app.detection_panel import DetectionPanel
from app.dialogs import SeriesChooserDialog, ask_discard_review, ask_stop_training, show_shortcuts
from app.findings_panel import FindingsPanel
from app.model_choice import ModelChoice
from app.planes import Plane
from app.readout import readout_at
from app.review import ReviewKeeper, ReviewStore
from app.settings import AppSettings
from app.slice_view import SliceView
from app.state import OverlayMode, ViewerState
from app.training.panel import TrainingPanel
from app.training.window import TrainingWindow
from app.window_menus import build_menus, shortcut_list, update_actions
from app.window_open import OPEN_FILTER, dropped_path, fill_recent_menu, last_folder, opened_texts
from app.window_settings import check_layout, dock_defaults, reset_layout, restore_window, save_window
from app.windowing import Preset, load_presets
from app.workers import DetectorFactory, DetectorProvider, ThreadPool, default_detector
from engine.detection.result import DetectionResult
from engine.io.dicom import DicomSeriesInfo
from engine.io.volume import CtVolume

APP_TITLE = "LungCAD"


class MainWindow(QMainWindow):
    """The viewer's window.

    Args:
        state: The viewer state (a new one by default).
        settings: Persistent settings (``$LUNGCAD_SETTINGS`` or the user's by default).
        detector_factory: Builds the detector in the worker thread (default: the
            engine's bundled demo models); tests pass a fake.
        demo_models: Whether that detector runs the demo models (default: True
            exactly when ``detector_factory`` is None).
        presets: Window/level presets (default: ``resources/presets.json``).
    """

    def __init__(
        self,
        state: ViewerState | None = None,
        settings: AppSettings | None = None,
        detector_factory: DetectorFactory | None = None,
        presets: tuple[Preset, ...] | None = None,
        demo_models: bool | None = None,
    ) -> None:
        super().__init__()
        self.state = state or ViewerState()
        self.settings = settings or AppSettings()
        self.presets = presets if presets is not None else load_presets()
        self.pool = ThreadPool(self)
        #: The Models menu decides Detect's models unless the caller gave its own detector.
        self.models_drive_detect = detector_factory is None
        self.provider = DetectorProvider(
            detector_factory or default_detector, demo=(detector_factory is None) if demo_models is None else demo_models
        )
        self.loader = LoadController(self.state, self.pool, self)
        self.detector = DetectController(self.state, self.provider, self.pool, self)
        self.detector.confirm_discard = lambda lost: self.confirm_discard_review(lost)
        #: The reader's verdicts, notes and measurements, saved per series on every change.
        self.review = ReviewKeeper(self.state, ReviewStore(notice=lambda text: self.report_error("Review", text)))
        self.current_path: Path | None = None
        self._last_overlay_mode = OverlayMode.FINDINGS
        self._menus: dict[str, QMenu] = {}
        self.actions_: dict[str, QAction] = {}
        self.setWindowTitle(f"{APP_TITLE} — not for clinical use")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._build_views()
        self._build_docks()
        self._build_status_bar()
        build_menus(self)
        self._wire()
        restore_window(self)

    # --- construction ---------------------------------------------------------------
    def _build_views(self) -> None:
        self.views = {plane: SliceView(self.state, plane) for plane in Plane}
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.views[Plane.CORONAL])
        right.addWidget(self.views[Plane.SAGITTAL])
        self.view_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.view_splitter.addWidget(self.views[Plane.AXIAL])
        self.view_splitter.addWidget(right)
        self.view_splitter.setStretchFactor(0, 3)
        self.view_splitter.setStretchFactor(1, 2)
        self.side_splitter = right
        self.setCentralWidget(self.view_splitter)
        for view in self.views.values():
            view.hovered.connect(self._show_readout)

    def add_dock(
        self,
        title: str,
        widget: QWidget,
        name: str,
        area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
        keep_height: bool = False,
    ) -> QDockWidget:
        """Add a panel as a dock (its layout is saved and restored with the window).

        Args:
            title: Dock title.
            widget: The panel.
            name: Object name (identifies the dock in the saved layout).
            area: Where it goes first.
            keep_height: Keep the panel's natural height (up to 440 px) instead
                of letting it scroll when space is short.
        """
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        if keep_height:
            dock.setWidget(widget)
        else:
            scroll = QScrollArea()  # lets the window shrink on small screens instead of refusing to
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.detection_panel = DetectionPanel(self.state, self.detector)
        self.findings_panel = FindingsPanel(self.state)
        self.crop_panel = CropPreviewPanel(self.state)
        self.docks = {
            "cad": self.add_dock("CAD", self.detection_panel, "cadDock"),
            "findings": self.add_dock("Findings", self.findings_panel, "findingsDock"),
            "candidate": self.add_dock("Selected finding", self.crop_panel, "candidateDock"),
        }
        self.training_panel = TrainingPanel(self.pool, settings=self.settings)
        #: The Training panel's own window (Models ▸ Train a model, Ctrl+T): it never takes room from the docks.
        self.training_window = TrainingWindow(self.training_panel)
        self.reopen_training = False
        dock_defaults(self)  # minimum sizes and the first arrangement

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.readout_label = QLabel("")
        self.readout_label.setMinimumWidth(460)
        self.series_label = QLabel("")
        self.model_label = QLabel("")
        self.load_progress = QProgressBar()
        self.load_progress.setMaximumWidth(180)
        self.load_progress.setFixedHeight(14)
        self.load_progress.hide()
        bar.addWidget(self.readout_label, 1)
        bar.addPermanentWidget(self.load_progress)
        bar.addPermanentWidget(self.series_label)
        bar.addPermanentWidget(self.model_label)

    def menu(self, title: str) -> QMenu:
        """The menu called ``title`` (created, in order, on first use)."""
        if title not in self._menus:
            self._menus[title] = self.menuBar().addMenu(title)
        return self._menus[title]

    def _wire(self) -> None:
        self.loader.started.connect(self._on_load_started)
        self.loader.progress.connect(self._on_load_progress)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.series_found.connect(self._on_series_found)
        self.loader.failed.connect(lambda message: self.report_error("Cannot open", message))
        self.loader.idle.connect(self._on_load_idle)
        self.detector.failed.connect(lambda message: self.report_error("Detection failed", message))
        self.detector.done.connect(self._on_detected)
        self.detector.cancelled.connect(lambda: self.statusBar().showMessage("Detection cancelled; the previous result is kept.", 5000))
        self.detector.kept.connect(lambda: self.statusBar().showMessage("The previous result and its review are kept.", 8000))
        self.detector.busy_changed.connect(self._update_actions)
        self.detection_panel.detect_requested.connect(self.run_detect)
        self.findings_panel.export_requested.connect(self.export)
        self.models.changed.connect(self._show_models)
        self.models.notice.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.training_panel.use_for_detect_requested.connect(self.models.choose)
        self.training_panel.error_reported.connect(self._report_training_error)
        self.training_panel.notice_posted.connect(lambda text: self.statusBar().showMessage(text, 15000))
        for event in ("volume", "result", "findings", "selection", "cad"):
            self.state.subscribe(event, self._update_actions)
        self.state.subscribe("cad", lambda: self.actions_["hide_cad"].setChecked(self.state.hide_cad))
        self.state.subscribe("overlay", self._sync_overlay_action)
        self._sync_overlay_action()
        self._update_actions()

    # --- opening ------------------------------------------------------------------------
    def open_path(self, path: str | Path, series_uid: str | None = None) -> bool:
        """Open a CT file or DICOM folder in the background. False while another load runs."""
        return self._started(self.loader.open(Path(path), series_uid))

    def open_demo(self) -> bool:
        """Open the built-in demo series (generated on first use)."""
        return self._started(self.loader.open(None))

    def _started(self, started: bool) -> bool:
        if not started:
            self.statusBar().showMessage("Still opening the previous series; try again when it is loaded.", 4000)
        return started

    def ask_open_file(self) -> None:
        """File ▸ Open."""
        path, _ = QFileDialog.getOpenFileName(self, "Open a CT volume", self._last_folder(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def ask_open_dicom(self) -> None:
        """File ▸ Open DICOM folder."""
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM series folder", self._last_folder())
        if folder:
            self.open_path(folder)

    def _last_folder(self) -> str:
        return last_folder(self.settings)

    def fill_recent_menu(self) -> None:
        """File ▸ Open Recent, filled each time it opens."""
        fill_recent_menu(self.recent_menu, self.settings, self.open_path)

    def _on_load_started(self, what: str) -> None:
        self.load_progress.setRange(0, 0)
        self.load_progress.show()
        self.statusBar().showMessage(f"Opening {what}…")

    def _on_load_progress(self, fraction: float, text: str) -> None:
        if fraction < 0:
            self.load_progress.setRange(0, 0)
        else:
            self.load_progress.setRange(0, 1000)
            self.load_progress.setValue(int(fraction * 1000))
        if text:
            self.statusBar().showMessage(f"{text}…")

    def _on_load_idle(self) -> None:
        self.load_progress.hide()

    def _on_loaded(self, ct: CtVolume, path: object) -> None:
        self.detector.cancel()
        self.current_path = Path(path)
        if not self.loader.loading_demo:  # the demo is not a "recent file"
            self.settings.add_recent_file(self.current_path)
        name = self.current_path.name
        self.setWindowTitle(f"{name} — {APP_TITLE} — not for clinical use")
        label, tooltip, message, shown_ms = opened_texts(ct, name)
        self.series_label.setText(label)
        self.series_label.setToolTip(tooltip)
        self.statusBar().showMessage(message, shown_ms)
        self.views[Plane.AXIAL].canvas.setFocus()

    def _on_series_found(self, folder: object, series: list[DicomSeriesInfo]) -> None:
        uid = self.choose_series(Path(folder), series)
        if uid is not None:
            self.open_path(folder, uid)
        else:
            self.statusBar().showMessage("Opening cancelled.", 3000)

    def choose_series(self, folder: Path, series: list[DicomSeriesInfo]) -> str | None:
        """Ask which series of a DICOM folder to open (tests replace this)."""
        return SeriesChooserDialog.choose(self, folder, series)

    def report_error(self, title: str, message: str, parent: QWidget | None = None) -> None:
        """Show an error in a dialog (over ``parent``, default this window); the viewer carries on with what it had."""
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        QMessageBox.critical(parent or self, title, message)

    def _report_training_error(self, title: str, message: str) -> None:
        window = self.training_window
        self.report_error(title, message, window if window.isVisible() else None)

    # --- drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 — Qt override
        if dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 — Qt override
        path = dropped_path(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.open_path(path)

    # --- display ----------------------------------------------------------------------------
    def apply_preset(self, preset: Preset) -> None:
        """Set a window/level preset and remember it."""
        self.state.set_window(preset.window)
        self.settings.set_last_preset(preset.name)

    def reset_views(self) -> None:
        """Fit all three views."""
        for view in self.views.values():
            view.reset_view()

    def show_crosshair(self, shown: bool) -> None:
        """View ▸ Show crosshair."""
        for view in self.views.values():
            view.cross_h.setVisible(shown)
            view.cross_v.setVisible(shown)

    def show_overlay(self, shown: bool) -> None:
        """View ▸ Segmentation overlay: off, or back to the last overlay mode."""
        if shown:
            self.state.set_overlay_mode(self._last_overlay_mode)
        else:
            if self.state.overlay_mode != OverlayMode.OFF:
                self._last_overlay_mode = self.state.overlay_mode
            self.state.set_overlay_mode(OverlayMode.OFF)

    def _sync_overlay_action(self) -> None:
        self.actions_["overlay"].setChecked(self.state.overlay_mode != OverlayMode.OFF)

    def _show_readout(self, irc: tuple[int, int, int] | None) -> None:
        ct = self.state.volume
        reading = None if (irc is None or ct is None) else readout_at(ct, irc)
        self.readout_label.setText("" if reading is None else reading.text())

    # --- detection ----------------------------------------------------------------------------
    def run_detect(self) -> None:
        """Start Detect on the open series."""
        if self.state.volume is None:
            self.statusBar().showMessage("Open a series first.", 3000)
            return
        self.detector.detect()

    def _on_detected(self, result: DetectionResult) -> None:
        device = result.device
        self.model_label.setText(f"{self.models.choice.summary()} · {device}")
        messages = "; ".join(result.messages)
        kind = "Re-grouping" if self.detector.last_kind == "regroup" else "Detection"
        self.statusBar().showMessage(
            f"{kind} finished on {device} in {self.detector.elapsed():.1f} s" + (f" — {messages}" if messages else ""), 8000
        )

    def _show_models(self, choice: ModelChoice) -> None:
        self.model_label.setText(choice.summary())
        self.model_label.setToolTip(choice.tooltip())

    def show_training(self) -> None:
        """Models ▸ Train a model: show the Training window in front (first opened centred on the viewer)."""
        self.training_window.open(self.geometry())

    def set_training_shown(self, shown: bool) -> None:
        """View ▸ Training window: show it or hide it (a run goes on either way)."""
        if shown:
            self.show_training()
        else:
            self.training_window.hide()

    def reset_layout(self) -> None:
        """View ▸ Reset layout: the docks back to their first arrangement."""
        reset_layout(self)
        self.statusBar().showMessage("Layout reset.", 4000)

    def confirm_discard_review(self, lost: Sequence[str]) -> bool:
        """Ask before a new Detect result drops verdicts it has no lesion for (tests replace this)."""
        return ask_discard_review(self, lost)

    def _update_actions(self, *_args: Any) -> None:
        update_actions(self)

    # --- export ------------------------------------------------------------------------------
    def export(self, kind: str) -> Path | None:
        """Export the findings (``"csv"``, ``"json"``), the report (``"pdf"``) or a snapshot of the views (``"png"``)."""
        from app.export import export_from_window

        return export_from_window(self, kind)

    # --- help ---------------------------------------------------------------------------------
    def shortcut_list(self) -> list[tuple[str, str]]:
        """Every action with a shortcut, as ``(keys, text)``, for Help."""
        return shortcut_list(self.actions_)

    def show_shortcuts(self) -> None:
        """Help ▸ Keyboard shortcuts."""
        show_shortcuts(self, self.shortcut_list())

    # --- settings -------------------------------------------------------------------------------
    def save_settings(self) -> None:
        """Remember layout and thresholds (also done on close)."""
        save_window(self)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 — Qt override
        if self.training_panel.controller.busy:
            if not self.confirm_stop_training():
                event.ignore()
                return
            self.training_panel.controller.shutdown()
        self.detector.cancel()
        self.save_settings()  # before the Training window closes: whether it was open is remembered
        self.training_window.close()
        self.pool.wait_all(10_000)
        super().closeEvent(event)

    def confirm_stop_training(self) -> bool:
        """Ask before quitting while a training run goes (tests replace this)."""
        record = self.training_panel.controller.live
        return ask_stop_training(self, record.name if record is not None else "a run")

    def showEvent(self, event: Any) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        QTimer.singleShot(0, self.reset_views)
        QTimer.singleShot(0, lambda: check_layout(self))
        if self.reopen_training:  # it was open when the viewer last closed
            self.reopen_training = False
            QTimer.singleShot(0, self.show_training)
