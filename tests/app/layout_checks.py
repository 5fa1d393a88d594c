"""Checks that a shown window's texts fit their widgets and its controls lie inside their parents.

A label whose text is wider than the label, a button narrower than its text,
or a control that sticks out of its parent are drawn clipped: what a reader
sees is cut off. These checks measure with the widgets' own font metrics and
size hints, so they hold for any font the test machine has.
"""

from __future__ import annotations

from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

#: Controls whose whole rectangle must be on screen inside their parent.
CONTROLS = (QPushButton, QCheckBox, QComboBox, QLineEdit, QAbstractSpinBox)


def _label_problem(label: QLabel) -> str | None:
    text = label.text()
    if not text or not label.isVisible():
        return None
    if label.wordWrap():
        need = label.heightForWidth(label.width())
        if need > label.height() + 1:
            return f"label {text[:40]!r}: needs {need} px of height, has {label.height()}"
        return None
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text)
    )
    if rich:
        need = label.sizeHint().width()
    else:
        metrics = label.fontMetrics()
        need = max(metrics.horizontalAdvance(line) for line in text.split("\n")) + 2 * label.margin()
        need += label.contentsMargins().left() + label.contentsMargins().right()
    if need > label.width() + 1:
        return f"label {text[:40]!r}: needs {need} px, has {label.width()}"
    return None


def _button_problem(button: QAbstractButton) -> str | None:
    text = button.text().replace("&", "")
    if not text or not button.isVisible():
        return None
    metrics = button.fontMetrics()
    need = metrics.horizontalAdvance(text)
    if isinstance(button, QCheckBox):
        need += 16  # the indicator and its spacing, at least
    else:
        need += 8  # some padding either side of the text
    if need > button.width() or button.width() < button.minimumSizeHint().width():
        return f"button {text!r}: needs {max(need, button.minimumSizeHint().width())} px, has {button.width()}"
    return None


def clipped_texts(root: QWidget) -> list[str]:
    """Visible labels and buttons under ``root`` whose text does not fit them."""
    problems = []
    for label in root.findChildren(QLabel):
        problem = _label_problem(label)
        if problem:
            problems.append(problem)
    for button in root.findChildren(QAbstractButton):
        if isinstance(button, (QPushButton, QCheckBox)):
            problem = _button_problem(button)
            if problem:
                problems.append(problem)
    return problems


def outside_parents(root: QWidget) -> list[str]:
    """Visible controls under ``root`` not wholly inside their parent, or partly hidden by an ancestor's edge."""
    problems = []
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, CONTROLS) or not widget.isVisible() or widget.parentWidget() is None:
            continue
        name = getattr(widget, "text", lambda: "")() if not isinstance(widget, QComboBox) else widget.currentText()
        if not widget.parentWidget().rect().contains(widget.geometry()):
            problems.append(f"{type(widget).__name__} {name!r}: {widget.geometry()} outside {widget.parentWidget().rect()}")
        elif widget.visibleRegion().boundingRect() != widget.rect():
            problems.append(f"{type(widget).__name__} {name!r}: only {widget.visibleRegion().boundingRect()} of "
                            f"{widget.rect()} visible")
    return problems
