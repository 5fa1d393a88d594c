"""The Training panel: start a run, follow it live, stop it, re-open old runs, hand a run to Detect.

Two tabs, "New run" (:class:`~app.training.form.TrainingFormWidget`) and
"Runs" (every run folder with its state, listed off the GUI thread), in a
column beside the viewed run (:class:`~app.training.view.RunView`), or above
it in a window narrower than :data:`WIDE_MIN_WIDTH`. The panel lives in its
own window (:class:`~app.training.window.TrainingWindow`). The logic lives
in :class:`~app.training.controller.TrainingController`; this widget only
wires the pieces and reports refusals through ``error_reported`` (the window
shows them in its error dialog).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.call_worker import CallWorker
from app.settings import AppSettings
from app.training.controller import TrainingController
from app.training.form import TrainingFormWidget
from app.training.record import RunRecord
from app.training.run_folders import RunSummary, list_runs
from app.training.view import STATUS_COLOURS, RunView
from app.workers import ThreadPool
from engine.choices import MODEL_ROLES as ROLES
from engine.errors import TrainingRunError
from engine.paths import runs_dir

#: From this width on the form sits beside the run instead of above it, px (the form's column and two plots).
WIDE_MIN_WIDTH = 1100
#: Width of the form column in the wide layout, px.
FORM_WIDTH = 440


class ElidedLabel(QLabel):
    """A one-line label that shortens its text in the middle to fit (a long folder path), the whole text as tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setMinimumWidth(80)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        """Show ``text``, shortened with "…" in the middle where it does not fit."""
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        """The text before shortening."""
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width() - 2 * self.margin()
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(0, room)))


class TrainingPanel(QWidget):
    """New run form, runs list and the live view of one run.

    Args:
        pool: Runs dataset checks and run listing off the GUI thread (default: its own).
        controller: The training logic (default: one running ``python -m training``).
        runs_root: Parent folder of runs (default: the user's runs folder).
        settings: Remembers the dataset folder (default: nothing is remembered).
        parent: Qt parent.

    Signals:
        use_for_detect_requested(str, object): a model kind and the checkpoint Detect should use.
        error_reported(str, str): a title and message for the window's error dialog.
        notice_posted(str): a one-line status message (a run ended).
    """

    use_for_detect_requested = Signal(str, object)
    error_reported = Signal(str, str)
    notice_posted = Signal(str)

    def __init__(
        self,
        pool: ThreadPool | None = None,
        controller: TrainingController | None = None,
        runs_root: Callable[[], Path] = runs_dir,
        settings: AppSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.pool = pool or ThreadPool(self)
        self.controller = controller or TrainingController(parent=self)
        self.controller.setParent(self)
        self.runs_root = runs_root
        self.settings = settings
        self.runs: list[RunSummary] = []
        self._listing = False
        self._arranged = False
        #: The width the panel may use (its own; in a scroll area, the area's, which :meth:`arrange` follows).
        self.room: Callable[[], int] = self.width
        self.form = TrainingFormWidget(self.pool, runs_root)
        self.view = RunView(self.controller)
        self._build()
        self.form.start_requested.connect(self.start)
        self.view.stop_requested.connect(self.controller.stop)
        self.view.use_requested.connect(self.use_viewed)
        self.controller.busy_changed.connect(self.form.set_running)
        self.controller.run_ended.connect(self._on_run_ended)
        remembered = settings.training_dataset() if settings is not None else None
        if remembered:
            self.form.data_edit.setText(remembered)  # checked when the panel is first shown

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self.arrange()

    def arrange(self) -> None:
        """The form beside the run when :attr:`room` is at least :data:`WIDE_MIN_WIDTH` wide, else above it."""
        wide = self.room() >= WIDE_MIN_WIDTH
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.splitter.orientation() == orientation and self._arranged:
            return
        self._arranged = True
        self.splitter.setOrientation(orientation)
        if wide:
            self._fit_column()
        else:
            self.splitter.setSizes([self.tabs.sizeHint().height(), max(1, self.view.sizeHint().height())])

    def _fit_column(self) -> None:
        """In the wide layout: the form's column, or wider for the Runs tab so its run names are not cut."""
        if self.splitter.orientation() != Qt.Orientation.Horizontal:
            return
        width = max(FORM_WIDTH, self.tabs.minimumSizeHint().width())
        if self.tabs.currentIndex() == 1:
            table, header = self.runs_table, self.runs_table.horizontalHeader()
            columns = sum(max(table.sizeHintForColumn(k), header.sectionSizeHint(k)) for k in range(table.columnCount()))
            wanted = columns + 2 * table.frameWidth() + table.verticalScrollBar().sizeHint().width() + 12
            width = max(width, min(wanted, self.room() - self.view.minimumSizeHint().width() - 8))
        self.splitter.setSizes([width, max(1, self.room() - width)])

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        self.refresh_runs()  # when shown, not at start: no thread (and no disk reading) for a hidden panel
        form = self.form
        if form.data_edit.text() and form.dataset is None and not form.checking:
            form.set_dataset(form.data_edit.text())

    @Slot(object)
    def _on_run_ended(self, record: RunRecord) -> None:
        self.refresh_runs()
        detail = f": {record.message}" if record.message else ""
        self.notice_posted.emit(f"Training run {record.name} {record.status.value}{detail}")

    def _build(self) -> None:
        self.runs_table = QTableWidget(0, 6)
        self.runs_table.setHorizontalHeaderLabels(["Run", "Model", "State", "Epochs", "Best", "Updated"])
        self.runs_table.verticalHeader().hide()
        self.runs_table.setWordWrap(False)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.runs_table.doubleClicked.connect(lambda _index: self.open_selected())
        self.runs_table.itemSelectionChanged.connect(self._update_run_buttons)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show this run's curves, log and checkpoints (follows it while it runs)")
        self.open_button.clicked.connect(self.open_selected)
        self.use_run_button = QPushButton("Use for Detect")
        self.use_run_button.clicked.connect(self.use_selected)
        self.runs_note = ElidedLabel()
        runs_page = QWidget()
        buttons = QHBoxLayout()
        buttons.addWidget(self.runs_note, 1)
        for button in (self.refresh_button, self.open_button, self.use_run_button):
            buttons.addWidget(button)
        box = QVBoxLayout(runs_page)
        box.setContentsMargins(2, 2, 2, 2)
        box.addWidget(self.runs_table)
        box.addLayout(buttons)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.form, "New run")
        self.tabs.addTab(runs_page, "Runs")
        self.tabs.currentChanged.connect(lambda _index: self._fit_column())
        # the form column beside the run; resizeEvent puts it above the run in a narrow window
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.view)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._update_run_buttons()

    # --- starting and using runs -----------------------------------------------------------------
    @Slot()
    def start(self) -> RunRecord | None:
        """Start the run the form describes; refusals go to ``error_reported``."""
        try:
            record = self.controller.start(self.form.request())
        except TrainingRunError as exc:
            self.error_reported.emit("Cannot start training", str(exc))
            return None
        if self.settings is not None and self.form.dataset is not None:
            self.settings.set_training_dataset(self.form.dataset.root)
        self.form.new_run_name()
        self.refresh_runs()
        return record

    @Slot()
    def use_viewed(self) -> None:
        """"Use for Detect" on the viewed run."""
        record = self.controller.viewed
        if record is not None:
            self._use(record.kind, record.detect_checkpoint(), record.name)

    @Slot()
    def use_selected(self) -> None:
        """"Use for Detect" on the run selected in the list."""
        run = self.selected_run()
        if run is not None:
            self._use(run.kind, run.checkpoint, run.name)

    def _use(self, kind: str, checkpoint: Path | None, name: str) -> None:
        if checkpoint is None:
            self.error_reported.emit("Cannot use this run", f"run {name} has no checkpoint yet")
            return
        if kind not in ROLES:
            self.error_reported.emit("Cannot use this run", f"run {name}: its model kind is unknown (no config.json or "
                                     "run_started event); choose its checkpoint with Models ▸ … ▸ From file")
            return
        self.use_for_detect_requested.emit(kind, checkpoint)

    # --- the runs list ----------------------------------------------------------------------------
    @Slot()
    def refresh_runs(self) -> None:
        """List the runs folder again (in the background)."""
        if self._listing:
            return
        self._listing = True
        self.runs_note.set_full_text("Reading runs…")
        root = self.runs_root()
        worker = CallWorker(lambda: list_runs(root), tag=root)
        worker.done.connect(self._on_runs)
        worker.failed.connect(self._on_runs_failed)
        self.pool.start(worker)

    @property
    def listing(self) -> bool:
        """True while the runs folder is being read."""
        return self._listing

    @Slot(object, object)
    def _on_runs(self, root: Path, runs: list[RunSummary]) -> None:
        self._listing = False
        selected = self.selected_run()
        self.runs = list(runs)
        self.runs_table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            best = f"{run.best_metric} {run.best_score:.3f}" if run.best_score is not None else "—"
            updated = time.strftime("%m-%d %H:%M", time.localtime(run.updated)) if run.updated else ""
            cells = (run.name, run.kind or "?", run.status.value, f"{run.epoch}/{run.epochs}", best, updated)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(run.run_dir))
                if column == 2 and run.status in STATUS_COLOURS:
                    item.setForeground(QBrush(QColor(STATUS_COLOURS[run.status])))
                self.runs_table.setItem(row, column, item)
            if selected is not None and run.run_dir == selected.run_dir:
                self.runs_table.selectRow(row)
        self.runs_note.set_full_text(f"{len(self.runs)} run(s) in {root}" if self.runs else f"No runs yet in {root}")
        self._update_run_buttons()
        self._fit_column()

    @Slot(object, str)
    def _on_runs_failed(self, root: Path, message: str) -> None:
        self._listing = False
        self.runs_note.set_full_text(f"Cannot read the runs in {root}: {message}")

    def selected_run(self) -> RunSummary | None:
        """The run selected in the list, or None."""
        rows = self.runs_table.selectionModel().selectedRows() if self.runs_table.selectionModel() else []
        return self.runs[rows[0].row()] if rows and rows[0].row() < len(self.runs) else None

    def open_selected(self) -> None:
        """View the selected run (re-attaching to it when it still runs)."""
        run = self.selected_run()
        if run is not None:
            self.controller.open_run(run.run_dir)

    def _update_run_buttons(self) -> None:
        run = self.selected_run()
        self.open_button.setEnabled(run is not None)
        usable = run is not None and run.status.usable and run.checkpoint is not None
        self.use_run_button.setEnabled(usable)

