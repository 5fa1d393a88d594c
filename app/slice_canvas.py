"""The drawing surface of a slice view: mouse handling (``SliceViewBox``) and edge labels (``SliceCanvas``).

The view box turns the mouse into what a radiologist expects: left click/drag
moves the crosshair (with the ruler tool on: draws a measurement, and a click
selects one), right-drag changes window/level (horizontal = width, vertical =
level), middle-drag pans, the wheel scrolls slices and Ctrl+wheel zooms. The
canvas pins the orientation letters, the slice info, the window text, a scale
bar and a placeholder to its edges — text on a dark backing, so it stays
legible on bright lung-window pixels — and passes keys and mouse-leave to the
:class:`~app.slice_view.SliceView` that owns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel

from app.theme import VIEW_BACKGROUND
from app.view_overlays import ScaleBar, image_text_style

if TYPE_CHECKING:
    from app.slice_view import SliceView


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse does what a radiologist expects (see the module docstring)."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(lockAspect=1.0, invertY=True, enableMenu=False, defaultPadding=0.0)
        self._view = view
        self._wheel_rest = 0

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802 — Qt override
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)  # zoom about the cursor
            return
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self._view.scroll(steps)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 — Qt override
        button = ev.button()
        if button == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)  # pan
        elif button == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos(button)
            self._view.drag_window(ev.isStart(), float(delta.x()), float(delta.y()))
        elif button == Qt.MouseButton.LeftButton:
            ev.accept()
            if self._view.state.measure_mode:
                start = self.mapSceneToView(ev.buttonDownScenePos(button))
                self._view.drag_ruler(start, self.mapSceneToView(ev.scenePos()), ev.isFinish())
            else:
                self._view.point_at(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 — Qt override
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if self._view.state.measure_mode:
                self._view.pick_measurement(self.mapSceneToView(ev.scenePos()))
            else:
                self._view.point_at(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()


class SliceCanvas(pg.GraphicsView):
    """The drawing surface, with text labels pinned to its edges."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(background=pg.mkColor(*VIEW_BACKGROUND))
        self._view = view
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 160)
        self.setAcceptDrops(False)  # files dropped on a view go to the main window, which opens them

        def label(align: Qt.AlignmentFlag, big: bool = False) -> QLabel:
            lab = QLabel(self)
            lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            lab.setAlignment(align)
            lab.setStyleSheet(image_text_style(16 if big else 12, bold=big))
            return lab

        left, right = Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight
        vcenter, hcenter = Qt.AlignmentFlag.AlignVCenter, Qt.AlignmentFlag.AlignHCenter
        self.letters = {
            "left": label(left | vcenter, True),
            "right": label(right | vcenter, True),
            "top": label(hcenter | Qt.AlignmentFlag.AlignTop, True),
            "bottom": label(hcenter | Qt.AlignmentFlag.AlignBottom, True),
        }
        self.info = label(left | Qt.AlignmentFlag.AlignTop)
        self.window_text = label(left | Qt.AlignmentFlag.AlignBottom)
        self.placeholder = label(hcenter | vcenter)
        self.placeholder.setStyleSheet("color: #8a8f98; background: transparent; font-size: 13px;")
        self.scale_bar = ScaleBar(self)
        for lab in (*self.letters.values(), self.info, self.window_text):
            lab.hide()  # shown by place_labels once they have text (an empty backing is a stray dark box)

    def place_labels(self) -> None:
        """Fit each edge label to its text and pin it to its edge (empty ones are hidden)."""
        w, h, m = self.width(), self.height(), 6
        for name, lab in (("info", self.info), ("window", self.window_text), *self.letters.items()):
            if not lab.text():
                lab.hide()
                continue
            lab.adjustSize()
            lw, lh = lab.width(), lab.height()
            x, y = {
                "left": (m, (h - lh) // 2),
                "right": (w - lw - m, (h - lh) // 2),
                "top": ((w - lw) // 2, m),
                "bottom": ((w - lw) // 2, h - lh - m),
                "info": (m, m),
                "window": (m, h - lh - m),
            }[name]
            if name == "top" and self.info.isVisible() and self.info.geometry().right() + 4 >= x:
                y = self.info.geometry().bottom() + 4  # a narrow view: the letter goes below the info box
            lab.move(x, y)
            lab.show()

    def resizeEvent(self, ev) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(ev)
        if not hasattr(self, "placeholder"):  # pyqtgraph resizes once inside its own __init__
            return
        self.placeholder.setGeometry(0, 0, self.width(), self.height())
        self.scale_bar.pin()
        self.place_labels()

    def leaveEvent(self, ev) -> None:  # noqa: N802 — Qt override
        super().leaveEvent(ev)
        self._view.mouse_left()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 — Qt override
        if not self._view.handle_key(ev.key()):
            super().keyPressEvent(ev)
