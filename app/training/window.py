"""The Training window: the Training panel in a top-level window of its own.

Training is a different task from reading: its curves want width, its log
wants height, and a run goes on for hours while the reader keeps reviewing.
As a dock it could only take room from the views or the review docks, so it
lives in its own window (Models ▸ Train a model, Ctrl+T), which the reader can
put beside the viewer or on a second screen. Opening or closing it never
changes the main window's layout; closing it only hides it — a run carries on
and the panel keeps following it.

The window remembers its geometry and whether it was open
(:func:`app.window_settings.save_window`); a saved geometry that cannot be
read, or that is smaller than :data:`MIN_SIZE`, gives the first size again.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QRect, Signal
from PySide6.QtGui import QGuiApplication, QHideEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QFrame, QMainWindow, QScrollArea, QWidget

from app.training.panel import TrainingPanel

#: First size of the window, px (shrunk to fit a smaller screen).
FIRST_SIZE = (1280, 820)
#: Smallest size a restored geometry may have before the first size is used again, px.
MIN_SIZE = (720, 560)
WINDOW_TITLE = "Training — LungCAD"


class TrainingWindow(QMainWindow):
    """A top-level window holding the :class:`TrainingPanel` (scrolls rather than clips on a small screen).

    Args:
        panel: The Training panel it shows.
        parent: None: a window of its own, not kept above the viewer.

    Signals:
        visibility_changed(bool): shown or hidden.
    """

    visibility_changed = Signal(bool)

    def __init__(self, panel: TrainingPanel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.setObjectName("trainingWindow")
        self.setWindowTitle(WINDOW_TITLE)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(panel)
        self.setCentralWidget(self.scroll)
        # the panel's own width is at least its minimum, so it arranges itself for the width the window gives
        panel.room = self.scroll.viewport().width
        self.statusBar().setSizeGripEnabled(True)
        panel.notice_posted.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self._placed = False

    def first_geometry(self, near: QRect | None = None) -> QRect:
        """Where the window goes when nothing is remembered: :data:`FIRST_SIZE` (fitted to the screen), centred on ``near``."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else QRect(0, 0, *FIRST_SIZE)
        width = min(FIRST_SIZE[0], max(MIN_SIZE[0], int(room.width() * 0.92)))
        height = min(FIRST_SIZE[1], max(MIN_SIZE[1], int(room.height() * 0.92)))
        centre = (near if near is not None and near.isValid() else room).center()
        x = min(max(room.left(), centre.x() - width // 2), max(room.left(), room.right() - width))
        y = min(max(room.top(), centre.y() - height // 2), max(room.top(), room.bottom() - height))
        return QRect(x, y, width, height)

    def reset_geometry(self, near: QRect | None = None) -> None:
        """Back to the first size and place (View ▸ Reset layout); without ``near``, placed again when next opened."""
        self.setGeometry(self.first_geometry(near))
        self._placed = near is not None

    def restore(self, geometry: QByteArray | None) -> bool:
        """Put back a saved geometry. False (and the first geometry) when it is missing, unreadable or too small."""
        if geometry is not None and self.restoreGeometry(geometry) and self.usable():
            self._placed = True
            return True
        self.reset_geometry()
        return False

    def usable(self) -> bool:
        """True when the window is at least :data:`MIN_SIZE`."""
        return self.width() >= MIN_SIZE[0] and self.height() >= MIN_SIZE[1]

    def open(self, near: QRect | None = None) -> None:
        """Show the window in front (first placed centred on ``near``, e.g. the viewer's geometry)."""
        if not self._placed:
            self.reset_geometry(near)
        self.showNormal() if self.isMinimized() else self.show()
        self.raise_()
        self.activateWindow()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self.panel.arrange()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        self.visibility_changed.emit(True)

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 — Qt override
        super().hideEvent(event)
        self.visibility_changed.emit(False)
