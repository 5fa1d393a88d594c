"""Dialogs: choosing a DICOM series, the keyboard shortcuts, About, quitting during training, discarding verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.io.dicom import DicomSeriesInfo

ABOUT_TEXT = """<h3>LungCAD</h3>
<p>A chest-CT viewer with a lung-nodule detector: U-Net segmentation, grouping,
nodule classifier and malignancy classifier (the LUNA16 pipeline).</p>
<p><b>Not for clinical use.</b> This is research and teaching software. The
demo models are trained on synthetic data; no result it shows is a diagnosis.</p>
<p>Coordinates are patient LPS millimetres (x → patient left, y → posterior,
z → superior) and voxel (index, row, col).</p>"""

#: Mouse gestures, listed with the keyboard shortcuts in Help.
MOUSE_HELP = (
    ("Left click / drag", "move the crosshair (all views follow)"),
    ("Right drag", "window/level: horizontal = width, vertical = level"),
    ("Middle drag", "pan"),
    ("Wheel", "previous / next slice"),
    ("Ctrl + wheel", "zoom about the cursor"),
    ("Up / Down", "one slice (in the view with focus)"),
    ("PgUp / PgDn", "ten slices"),
    ("Home / End", "first / last slice"),
    ("Drop a file or folder", "open it"),
)


class SeriesChooserDialog(QDialog):
    """Lists the series of a DICOM folder (modality, description, slices, thickness) to pick one.

    Args:
        folder: The folder (shown in the title).
        series: The series found, e.g. from ``engine.io.dicom.list_dicom_series``.
        parent: Qt parent.
    """

    def __init__(self, folder: Path, series: Sequence[DicomSeriesInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Choose a series — {Path(folder).name}")
        self.series = list(series)
        self.table = QTableWidget(len(self.series), 5)
        self.table.setHorizontalHeaderLabels(["Modality", "Description", "Slices", "Thickness", "Series UID"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, s in enumerate(self.series):
            thickness = f"{s.slice_thickness_mm:g} mm" if s.slice_thickness_mm else "?"
            cells = (s.modality or "?", s.description or "(no description)", str(s.slice_count), thickness, s.uid)
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        default = next((k for k, s in enumerate(self.series) if s.modality in ("CT", "")), 0)
        self.table.selectRow(default)
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(QLabel(f"The folder holds {len(self.series)} series. Which one should be opened?"))
        box.addWidget(self.table)
        box.addWidget(buttons)
        self.resize(720, 300)

    def selected_uid(self) -> str | None:
        """The uid of the highlighted series, or None."""
        rows = self.table.selectionModel().selectedRows()
        return self.series[rows[0].row()].uid if rows else None

    @classmethod
    def choose(cls, parent: QWidget | None, folder: Path, series: Sequence[DicomSeriesInfo]) -> str | None:
        """Show the dialog; the chosen series uid, or None if the user cancelled."""
        dialog = cls(folder, series, parent)
        return dialog.selected_uid() if dialog.exec() == QDialog.DialogCode.Accepted else None


def shortcuts_html(keys: Sequence[tuple[str, str]]) -> str:
    """An HTML table of keyboard shortcuts and mouse gestures.

    Args:
        keys: ``(shortcut, what it does)`` for every action with a shortcut.
    """
    rows = "".join(f"<tr><td><b>{k}</b></td><td>{what}</td></tr>" for k, what in keys)
    mouse = "".join(f"<tr><td><b>{k}</b></td><td>{what}</td></tr>" for k, what in MOUSE_HELP)
    return (
        "<h3>Keyboard</h3><table cellspacing='6'>" + rows + "</table>"
        "<h3>Mouse and views</h3><table cellspacing='6'>" + mouse + "</table>"
    )


def show_shortcuts(parent: QWidget, keys: Sequence[tuple[str, str]]) -> None:
    """Help ▸ Keyboard shortcuts."""
    box = QMessageBox(parent)
    box.setWindowTitle("Keyboard shortcuts")
    box.setText(shortcuts_html(keys))
    box.exec()


def ask_stop_training(parent: QWidget, run_name: str) -> bool:
    """Quitting while a training run goes: True when the user agrees to stop it."""
    answer = QMessageBox.question(
        parent,
        "Training is running",
        f"The training run {run_name} is still going. Quit and stop it?\n\nIts last complete checkpoint stays valid; "
        "continue it later with python -m training KIND --resume RUN_FOLDER.",
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_discard_review(parent: QWidget, lost: Sequence[str]) -> bool:
    """A new Detect result has no lesion for some verdicts or notes: True when the user agrees to drop them."""
    listed = "\n".join(f"• {item}" for item in list(lost)[:12]) + (f"\n… and {len(lost) - 12} more" if len(lost) > 12 else "")
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Verdicts without a lesion")
    box.setText(
        f"The new detection has no finding at the position of {len(lost)} reviewed "
        f"finding{'s' if len(lost) != 1 else ''}:\n\n{listed}\n\n"
        "Show the new result and discard these, or keep the previous result and its whole review?"
    )
    show = box.addButton("Show new result, discard", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep previous result", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.exec()
    return box.clickedButton() is show


def show_about(parent: QWidget) -> None:
    """Help ▸ About."""
    QMessageBox.about(parent, "About LungCAD", ABOUT_TEXT)
