"""The Training panel's view of one run: status, progress with ETA, live curves, log and checkpoints.

Bound to a :class:`~app.training.controller.TrainingController`: it redraws
what an event changed (progress → the bar, epoch → the curves, checkpoint →
the table) and owns no state of its own. Curves are pyqtgraph plots per
epoch in a 2 × 2 grid above the log, validation solid with dots, training
dashed; each plot keeps at least :data:`PLOT_MIN_WIDTH` × :data:`PLOT_MIN_HEIGHT`.
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.training.controller import TrainingController
from app.training.record import RunStatus, format_duration, progress_text

#: Plots (title, metrics), in grid order (two per row).
PLOTS = (("Loss", ("loss",)), ("Precision · recall", ("precision", "recall")), ("F1", ("f1",)), ("Dice · AUC", ("dice", "auc")))
#: Curve colour per metric.
METRIC_COLOURS = {
    "loss": "#f0c674", "precision": "#6ab0ff", "recall": "#ffb347", "f1": "#7fd88f", "dice": "#c792ea", "auc": "#ff7b9c",
}
#: Status colours in the header.
STATUS_COLOURS = {
    RunStatus.COMPLETED: "#7fd88f", RunStatus.STOPPED: "#f0c674", RunStatus.FAILED: "#ff7b7b",
    RunStatus.INTERRUPTED: "#ff9f60", RunStatus.STOPPING: "#f0c674",
}
#: Log lines kept on screen.
LOG_LINES = 5000
#: Smallest size of one plot of the 2 × 2 grid, px.
PLOT_MIN_WIDTH = 300
PLOT_MIN_HEIGHT = 170
#: Smallest height of the log and checkpoints tabs below the plots, px.
LOG_MIN_HEIGHT = 140


class RunView(QWidget):
    """Everything about the viewed run.

    Args:
        controller: The training controller (its ``viewed`` record is shown).
        parent: Qt parent.

    Signals:
        stop_requested(): Stop was clicked.
        use_requested(): "Use for Detect" was clicked.
    """

    stop_requested = Signal()
    use_requested = Signal()

    def __init__(self, controller: TrainingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._build()
        controller.run_changed.connect(self._on_changed)
        controller.logged.connect(self._append_log)
        controller.busy_changed.connect(lambda _busy: self._update_buttons())
        self.refresh()

    def _build(self) -> None:
        self.title = QLabel("No run yet: start one from New run, or open one from Runs.")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the checkpoints are kept")
        self.stop_button.clicked.connect(self.stop_requested)
        self.use_button = QPushButton("Use for Detect")
        self.use_button.setToolTip("Detect uses this run's best checkpoint (Models menu)")
        self.use_button.clicked.connect(self.use_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.eta = QLabel("")
        self.eta.setMinimumWidth(90)
        self.eta.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.plots_widget = pg.GraphicsLayoutWidget()
        self.plots_widget.setBackground(QColor(25, 26, 28))
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        # the graphics layout's spacing and margins come on top of the plots' own minimum
        self.plots_widget.setMinimumSize(2 * PLOT_MIN_WIDTH + 24, 2 * PLOT_MIN_HEIGHT + 24)
        for n, (title, metrics) in enumerate(PLOTS):
            plot = self.plots_widget.addPlot(row=n // 2, col=n % 2)
            plot.setMinimumSize(PLOT_MIN_WIDTH, PLOT_MIN_HEIGHT)
            plot.setTitle(_title_html(metrics), size="9pt")
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setMenuEnabled(False)
            plot.getAxis("bottom").setLabel("epoch")
            if metrics != ("loss",):
                plot.setYRange(0.0, 1.0, padding=0.04)
            for metric in metrics:
                colour = METRIC_COLOURS[metric]
                self.curves[("train", metric)] = plot.plot(
                    pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine), symbol="t", symbolSize=5,
                    symbolPen=None, symbolBrush=pg.mkBrush(colour),
                )
                self.curves[("val", metric)] = plot.plot(
                    pen=pg.mkPen(colour, width=2.2), symbol="o", symbolSize=7, symbolPen=None, symbolBrush=pg.mkBrush(colour),
                )
            self.plots[title] = plot
        legend = QLabel("<span style='color:#aaa'>solid ●  validation &nbsp;&nbsp; dashed ▲  training</span>")
        legend.setAlignment(Qt.AlignmentFlag.AlignRight)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setStyleSheet("font-family: monospace; font-size: 9pt;")
        self.checkpoints = QTableWidget(0, 5)
        self.checkpoints.setHorizontalHeaderLabels(["File", "Epoch", "Score", "Saved", "SHA-256"])
        self.checkpoints.verticalHeader().hide()
        self.checkpoints.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.checkpoints.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.checkpoints.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.checkpoints.horizontalHeader().setStretchLastSection(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(self.checkpoints, "Checkpoints")
        self.tabs.setMinimumHeight(LOG_MIN_HEIGHT)

        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.stop_button)
        head.addWidget(self.use_button)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addLayout(head)
        box.addWidget(self.message)
        box.addLayout(bar)
        plots = QWidget()
        plots_box = QVBoxLayout(plots)
        plots_box.setContentsMargins(0, 0, 0, 0)
        plots_box.addWidget(self.plots_widget, 1)
        plots_box.addWidget(legend)
        self.splitter = QSplitter(Qt.Orientation.Vertical)  # the 2 × 2 curves above the log
        self.splitter.addWidget(plots)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        box.addWidget(self.splitter, 1)

    # --- updates --------------------------------------------------------------------------------
    @Slot(str)
    def _on_changed(self, what: str) -> None:
        if what == "viewed":
            self.refresh()
            return
        if what in ("progress", "run_started"):
            self._show_progress()
        if what in ("epoch", "run_started"):
            self._show_curves()
        if what == "checkpoint":
            self._show_checkpoints()
        self._show_header()
        if what in ("finished", "error", "status"):
            self._show_progress()
            self._show_checkpoints()

    def refresh(self) -> None:
        """Redraw everything for the viewed record (a new one was chosen)."""
        self._show_header()
        self._show_progress()
        self._show_curves()
        self._show_checkpoints()
        self.log_view.setPlainText("\n".join(self.controller.log_lines()))
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())

    def _show_header(self) -> None:
        record = self.controller.viewed
        if record is None:
            self.message.setText("")
            self._update_buttons()
            return
        colour = STATUS_COLOURS.get(record.status, "#6ab0ff")
        what = " · ".join(x for x in (record.kind, record.device) if x)
        self.title.setText(f"<b>{record.name}</b> &nbsp;{what} &nbsp;<b style='color:{colour}'>{record.status.value}</b>")
        self.title.setToolTip(str(record.run_dir or ""))
        text = record.message
        if record.status is RunStatus.FAILED:
            self.message.setStyleSheet("color: #ff7b7b;")
        else:
            self.message.setStyleSheet("color: #b8bcc4;")
            if record.best_epoch and record.best_score is not None:
                best = f"Best {record.best_metric} {record.best_score:.4f} at epoch {record.best_epoch}."
                text = f"{text} — {best}" if text else best
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._update_buttons()

    def _update_buttons(self) -> None:
        record = self.controller.viewed
        going = record is not None and not record.status.ended and record.status is not RunStatus.EMPTY
        self.stop_button.setEnabled(going and record.status is not RunStatus.STOPPING)
        ended = record is not None and record.status.usable
        self.use_button.setEnabled(ended and record.detect_checkpoint() is not None)

    def _show_progress(self) -> None:
        record = self.controller.viewed
        if record is None:
            self.progress.setValue(0)
            self.progress.setFormat("")
            self.eta.setText("")
            self.eta.hide()
            return
        p = record.progress
        if p is not None and p.phase == "cache":
            fraction = p.fraction
        elif record.status.ended:  # how much of the plan was done
            done = 1.0 if record.status is RunStatus.COMPLETED else record.completed_epochs / max(1, record.epochs)
            fraction = min(1.0, done)
        else:
            fraction = record.overall_fraction()
        if fraction is None and record.status in (RunStatus.STARTING, RunStatus.PREPARING, RunStatus.RUNNING):
            self.progress.setRange(0, 0)  # busy: the child is starting
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(round((fraction or 0.0) * 1000)))
        self.progress.setFormat(progress_text(record))
        eta = record.eta_s()
        self.eta.setText("" if eta is None else f"ETA {format_duration(eta)}")
        self.eta.setVisible(eta is not None)  # an ended run's bar takes the whole row

    def _show_curves(self) -> None:
        record = self.controller.viewed
        last = 1
        for (phase, metric), curve in self.curves.items():
            epochs, values = record.curve(phase, metric) if record is not None else ([], [])
            curve.setData(epochs, values)
            last = max([last, *epochs])
        planned = max(last, record.epochs if record is not None else 1)
        for plot in self.plots.values():
            plot.setXRange(0.5, planned + 0.5, padding=0)
            plot.getAxis("bottom").setTickSpacing(*_epoch_ticks(planned))
        has = {metric for (_phase, metric), c in self.curves.items() if c.xData is not None and len(c.xData)}
        dice_auc = tuple(m for m in ("dice", "auc") if m in has) or ("dice", "auc")
        self.plots["Dice · AUC"].setTitle(_title_html(dice_auc), size="9pt")

    def _show_checkpoints(self) -> None:
        record = self.controller.viewed
        rows = [record.checkpoints[k] for k in ("best", "last") if record is not None and k in record.checkpoints]
        self.checkpoints.setRowCount(len(rows))
        for row, info in enumerate(rows):
            score = f"{info.metric} {info.score:.4f}" if info.score is not None else ("complete" if info.complete else "partial epoch")
            saved = time.strftime("%H:%M:%S", time.localtime(info.time))
            cells = (f"{info.which}.pt", str(info.epoch), score, saved, info.sha256[:12])
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(info.path))
                self.checkpoints.setItem(row, column, item)

    @Slot(str)
    def _append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def points(self, phase: str, metric: str) -> tuple[list[float], list[float]]:
        """``(epochs, values)`` a curve shows now."""
        curve = self.curves[(phase, metric)]
        xs = [] if curve.xData is None else [float(x) for x in curve.xData]
        ys = [] if curve.yData is None else [float(y) for y in curve.yData]
        return xs, ys


def _title_html(metrics: tuple[str, ...]) -> str:
    names = {"f1": "F1", "auc": "AUC", "dice": "Dice"}
    return " · ".join(f"<span style='color:{METRIC_COLOURS[m]}'>{names.get(m, m)}</span>" for m in metrics)


def _epoch_ticks(epochs: int) -> tuple[float, float]:
    """Major and minor tick spacing of the epoch axis (whole epochs)."""
    major = max(1, int(round(epochs / 8)))
    return float(major), float(major)

