"""The list of ruler measurements: select one, jump to it, delete it (Delete key or button)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.measurements import Measurement
from app.state import ViewerState

#: Plane named after the array axis a measurement's slice cuts (for a volume in the usual orientation).
_AXIS_NAMES = {0: "axial", 1: "coronal", 2: "sagittal"}


def measurement_text(m: Measurement) -> str:
    """A list line: ``"#2  12.3 mm  · axial slice 41"``."""
    return f"#{m.id}  {m.length_mm:.1f} mm  · {_AXIS_NAMES[m.axis]} slice {m.slice_index + 1}"


class _List(QListWidget):
    def __init__(self, panel: MeasurementListWidget) -> None:
        super().__init__()
        self._panel = panel

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 — Qt override
        if ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self._panel.delete_selected()
        else:
            super().keyPressEvent(ev)


class MeasurementListWidget(QWidget):
    """The measurements of the open series, bound to the state.

    Args:
        state: The viewer state.
        parent: Qt parent.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.title = QLabel("Measurements — M: ruler tool, drag on a view")
        self.list = _List(self)
        self.list.setMaximumHeight(96)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemActivated.connect(self._jump)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected measurement (Delete)")
        self.delete_button.clicked.connect(self.delete_selected)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.delete_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 4, 0, 0)
        box.addLayout(head)
        box.addWidget(self.list)
        self._off = [state.subscribe("measurements", self.refresh), state.subscribe("volume", self.refresh)]
        self.destroyed.connect(lambda *_: [off() for off in self._off])
        self.refresh()

    def refresh(self) -> None:
        """List the state's measurements; select the state's selected one."""
        self.list.blockSignals(True)
        self.list.clear()
        for m in self.state.measurements:
            item = QListWidgetItem(measurement_text(m))
            item.setData(Qt.ItemDataRole.UserRole, m.id)
            self.list.addItem(item)
            if m.id == self.state.selected_measurement:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.delete_button.setEnabled(self.state.selected_measurement is not None)
        self.list.setVisible(bool(self.state.measurements))

    def _on_current(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None = None) -> None:
        self.state.select_measurement(None if item is None else int(item.data(Qt.ItemDataRole.UserRole)))

    def _jump(self, item: QListWidgetItem) -> None:
        """Show the measurement's slice, the crosshair at its middle."""
        mid = int(item.data(Qt.ItemDataRole.UserRole))
        for m in self.state.measurements:
            if m.id == mid:
                self.state.set_crosshair(0.5 * (np.array(m.start_irc) + np.array(m.end_irc)))

    def delete_selected(self) -> None:
        """Delete the selected measurement."""
        if self.state.selected_measurement is not None:
            self.state.remove_measurement(self.state.selected_measurement)
