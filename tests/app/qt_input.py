"""Synthetic mouse input for pyqtgraph views (QTest cannot hold a button while moving)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

#: pyqtgraph drops mouse moves closer than 10 ms apart (its ``mouseRateLimit``).
MOVE_INTERVAL_MS = 15


def view_point(view, irc) -> QPoint:
    """Widget position (in the canvas viewport) of voxel ``irc``'s centre in a ``SliceView``."""
    u, v = view.layout_.to_screen(np.asarray(irc, dtype=np.float64))
    scene = view.viewbox.mapViewToScene(QPointF(float(u), float(v)))
    return view.canvas.mapFromScene(scene)


def _send(widget, kind, pos: QPointF, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    QApplication.sendEvent(widget, QMouseEvent(kind, pos, global_pos, button, buttons, modifiers))


def drag(widget, button: Qt.MouseButton, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """Press ``button`` at ``start``, move to ``end`` in steps holding it, release."""
    a, b = QPointF(start), QPointF(end)
    QTest.qWait(MOVE_INTERVAL_MS)
    _send(widget, QEvent.Type.MouseButtonPress, a, button, button)
    for k in range(1, steps + 1):
        QTest.qWait(MOVE_INTERVAL_MS)
        _send(widget, QEvent.Type.MouseMove, a + (b - a) * (k / steps), Qt.MouseButton.NoButton, button)
    _send(widget, QEvent.Type.MouseButtonRelease, b, button, Qt.MouseButton.NoButton)


def hover(widget, pos: QPoint) -> None:
    """Move the mouse to ``pos`` with no button held."""
    QTest.qWait(MOVE_INTERVAL_MS)
    _send(widget, QEvent.Type.MouseMove, QPointF(pos), Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)


def wheel(widget, pos: QPoint, clicks: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Turn the wheel ``clicks`` notches (positive = away from the user) at ``pos``."""
    p = QPointF(pos)
    event = QWheelEvent(
        p,
        QPointF(widget.mapToGlobal(pos)),
        QPoint(0, 0),
        QPoint(0, 120 * clicks),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)
