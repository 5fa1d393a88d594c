"""The Training panel's "New run" form: dataset, model, epochs, batch, balancing, augmentation, device, name.

The dataset folder is checked off the GUI thread as soon as it is chosen
(:func:`~app.training.request.check_dataset`), and the verdict is shown under
it; Start stays off until the folder is usable for the chosen model. The form
owns no run: :meth:`TrainingFormWidget.request` captures the settings in a
frozen :class:`~app.training.request.TrainRequest`.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.call_worker import CallWorker
from app.training.request import KIND_LABELS, DatasetInfo, TrainRequest, check_dataset, default_run_name
from app.workers import ThreadPool
from engine.choices import DEVICE_CHOICES
from engine.errors import TrainingRunError
from engine.paths import runs_dir
from training.choices import AUGMENTATIONS, TRAIN_KINDS, kind_defaults

#: Augmentation switches per row.
AUGMENT_COLUMNS = 3
#: Colours of the dataset verdict.
OK_STYLE = "color: #7fd88f;"
BAD_STYLE = "color: #ff7b7b;"


def _spin(minimum: int, maximum: int, value: int, special: str = "", step: int = 1, tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)  # shown at the minimum, which means "the trainer's default"
    box.setToolTip(tip)
    return box


def _defaults(setting: str) -> str:
    """The trainers' default of ``setting`` per kind, e.g. ``"default: segmentation 16, classifier 32, ..."``."""
    return "default: " + ", ".join(f"{kind} {kind_defaults(kind)[setting]}" for kind in TRAIN_KINDS)


class TrainingFormWidget(QWidget):
    """The settings of a new run and the Start button.

    Args:
        pool: Runs the dataset check off the GUI thread.
        runs_root: Parent folder of runs (default: the user's runs folder).
        parent: Qt parent.

    Signals:
        start_requested(): Start was clicked with a usable dataset.
        dataset_checked(bool): the dataset check ended (True: usable for the chosen model).
    """

    start_requested = Signal()
    dataset_checked = Signal(bool)

    def __init__(self, pool: ThreadPool, runs_root: Callable[[], Path] = runs_dir, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.runs_root = runs_root
        self.dataset: DatasetInfo | None = None
        self._dataset_problem = "Choose a LUNA16-format dataset folder."
        self._checking: str | None = None
        self._running = False
        #: Suggests the checkpoint a malignancy run fine-tunes (the window: the classifier Detect uses).
        self.suggest_finetune: Callable[[], Path | None] = lambda: None
        self._build()
        self._on_kind_changed()

    def _build(self) -> None:
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("LUNA16-format folder: subset*/, annotations.csv, candidates.csv")
        self.data_edit.editingFinished.connect(lambda: self.set_dataset(self.data_edit.text()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.ask_dataset)
        self.data_status = QLabel(self._dataset_problem)
        self.data_status.setWordWrap(True)
        self.kind_combo = QComboBox()
        for kind, label in KIND_LABELS.items():
            self.kind_combo.addItem(label, kind)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.finetune_edit = QLineEdit()
        self.finetune_edit.setPlaceholderText("classifier .pt or book .state")
        self.finetune_button = QPushButton("Browse…")
        self.finetune_button.clicked.connect(self.ask_finetune)
        self.epochs = _spin(1, 10_000, 5, tip="Epochs to train")
        self.batch_size = _spin(0, 4096, 0, "default", tip=f"Samples per step ({_defaults('batch_size')})")
        self.ratio = _spin(-1, 1000, -1, "default", tip="Negatives per positive in balanced sampling; 0 = natural order "
                           f"({_defaults('ratio')})")
        self.epoch_size = _spin(0, 10_000_000, 0, "default", step=1000,
                                tip=f"Training samples per epoch ({_defaults('epoch_size')})")
        self.augment = {name: QCheckBox(name) for name in AUGMENTATIONS}
        for name, box in self.augment.items():
            box.setToolTip(f"--augment-{name} with the book's magnitude")
        self.device = QComboBox()
        self.device.setEditable(True)  # cuda:1 can be typed
        self.device.addItems(list(DEVICE_CHOICES))
        self.device.setToolTip("auto = CUDA, else MPS, else CPU")
        self.run_name = QLineEdit()
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more options, e.g. --lr 0.01 --val-stride 5")
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("detectButton")  # the theme's emphasised button
        self.start_button.clicked.connect(self.start_requested)

        form = QFormLayout(self)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.addRow("Dataset", _row(self.data_edit, browse))
        form.addRow("", self.data_status)
        form.addRow("Model", self.kind_combo)
        self.finetune_label = QLabel("Start from")
        form.addRow(self.finetune_label, _row(self.finetune_edit, self.finetune_button))
        form.addRow("Epochs", _row(self.epochs, QLabel("Batch size"), self.batch_size, stretch=True))
        form.addRow("Balancing ratio", _row(self.ratio, QLabel("Samples/epoch"), self.epoch_size, stretch=True))
        form.addRow("Device", _row(self.device, stretch=True))
        augment = QWidget()
        grid = QGridLayout(augment)  # three a row: one row of five would be clipped in the form's column
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(12)
        for n, box in enumerate(self.augment.values()):
            grid.addWidget(box, n // AUGMENT_COLUMNS, n % AUGMENT_COLUMNS)
        grid.setColumnStretch(AUGMENT_COLUMNS, 1)
        form.addRow("Augment", augment)
        form.addRow("Options", self.extra)
        form.addRow("Run name", self.run_name)
        start = QHBoxLayout()
        start.addStretch(1)
        start.addWidget(self.start_button)
        form.addRow(start)

    # --- dataset ----------------------------------------------------------------------------
    def ask_dataset(self) -> None:
        """Browse… for the dataset folder."""
        folder = QFileDialog.getExistingDirectory(self, "LUNA16-format dataset folder", self.data_edit.text() or str(Path.home()))
        if folder:
            self.set_dataset(folder)

    def set_dataset(self, folder: str | Path) -> None:
        """Show ``folder`` and check it in the background."""
        text = str(folder).strip()
        self.data_edit.setText(text)
        self.dataset = None
        if not text:
            self._show_dataset_problem("Choose a LUNA16-format dataset folder.")
            return
        self._checking = text
        self.data_status.setStyleSheet("")
        self.data_status.setText("Checking the folder…")
        self._update_start()
        worker = CallWorker(lambda: check_dataset(text), tag=text)
        worker.done.connect(self._on_dataset_ok)
        worker.failed.connect(self._on_dataset_bad)
        self.pool.start(worker)

    @property
    def checking(self) -> bool:
        """True while the dataset check runs."""
        return self._checking is not None

    @Slot(object, object)
    def _on_dataset_ok(self, folder: str, info: DatasetInfo) -> None:
        if folder != self._checking:
            return  # an older check; a newer one is running
        self._checking = None
        self.dataset = info
        self._show_kind_verdict()
        self.dataset_checked.emit(self.usable)

    @Slot(object, str)
    def _on_dataset_bad(self, folder: str, message: str) -> None:
        if folder != self._checking:
            return
        self._checking = None
        self._show_dataset_problem(f"Not a usable LUNA16-format folder — {message}")
        self.dataset_checked.emit(False)

    def _show_dataset_problem(self, text: str) -> None:
        self._dataset_problem = text
        self.data_status.setStyleSheet(BAD_STYLE)
        self.data_status.setText(text)
        self._update_start()

    def _show_kind_verdict(self) -> None:
        if self.dataset is None:
            self._update_start()
            return
        problem = self.dataset.problem_for(self.kind)
        if problem:
            self._show_dataset_problem(problem)
        else:
            self._dataset_problem = ""
            self.data_status.setStyleSheet(OK_STYLE)
            self.data_status.setText(f"✓ {self.dataset.summary()}")
            self._update_start()

    @property
    def usable(self) -> bool:
        """True when the checked dataset can train the chosen model."""
        return self.dataset is not None and self.dataset.problem_for(self.kind) is None

    # --- model ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The chosen model kind."""
        return str(self.kind_combo.currentData())

    def set_kind(self, kind: str) -> None:
        """Choose the model kind."""
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))

    @Slot()
    def _on_kind_changed(self) -> None:
        kind = self.kind
        self.run_name.setPlaceholderText(default_run_name(kind, time.strftime("%Y%m%d-%H%M%S")))
        finetunes = kind != "segmentation"
        self.finetune_edit.setEnabled(finetunes)
        self.finetune_button.setEnabled(finetunes)
        self.finetune_label.setText("Fine-tune from" if kind == "malignancy" else "Start from (optional)")
        if kind == "malignancy" and not self.finetune_edit.text():
            suggested = self.suggest_finetune()
            if suggested is not None:
                self.finetune_edit.setText(str(suggested))
        self._show_kind_verdict()

    def ask_finetune(self) -> None:
        """Browse… for the classifier checkpoint to fine-tune."""
        path, _ = QFileDialog.getOpenFileName(self, "Classifier checkpoint to fine-tune", self.finetune_edit.text() or str(self.runs_root()),
                                              "Checkpoints (*.pt *.pth *.state);;All files (*)")
        if path:
            self.finetune_edit.setText(path)

    # --- the request --------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        """Start is off while a run goes."""
        self._running = running
        self._update_start()

    def _update_start(self) -> None:
        self.start_button.setEnabled(self.usable and not self._running and self._checking is None)
        self.start_button.setToolTip("A run is going; one at a time." if self._running else self._dataset_problem)

    def request(self) -> TrainRequest:
        """The run the form describes.

        Raises:
            TrainingRunError: no usable dataset, or options that do not parse.
        """
        if self.dataset is None:
            raise TrainingRunError(self._dataset_problem or "choose a LUNA16-format dataset folder first")
        try:
            extra = tuple(shlex.split(self.extra.text()))
        except ValueError as exc:
            raise TrainingRunError(f"the extra options do not parse ({exc}): {self.extra.text()}") from None
        finetune = self.finetune_edit.text().strip() if self.kind != "segmentation" else ""
        return TrainRequest(
            kind=self.kind,
            data=self.dataset.root,
            run_name=self.run_name.text().strip() or self.run_name.placeholderText(),
            runs_root=self.runs_root(),
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value() or None,
            ratio=None if self.ratio.value() < 0 else self.ratio.value(),
            epoch_size=self.epoch_size.value() or None,
            augment=tuple(name for name, box in self.augment.items() if box.isChecked()),
            device=self.device.currentText().strip() or "auto",
            finetune=Path(finetune).expanduser() if finetune else None,
            extra=extra,
        )

    def new_run_name(self) -> None:
        """A fresh default name after a start (the next run must not reuse the folder)."""
        self.run_name.clear()
        self._on_kind_changed()


def _row(*widgets: QWidget, stretch: bool = False) -> QWidget:
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        box.addWidget(widget)
    if stretch:
        box.addStretch(1)
    return row
