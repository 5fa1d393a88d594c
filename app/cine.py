"""Cine: play the slices of one view at a chosen speed, stopping at the end or looping.

The state holds whether cine plays, its speed and whether it loops
(``set_cine``); :class:`CineController` turns that into a ``QTimer`` that
steps one view a slice "up" (towards superior, anterior or left) per frame.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer

from app.planes import Plane
from app.slice_view import SliceView
from app.state import ViewerState


def next_cine_position(position: int, n_slices: int, loop: bool) -> int | None:
    """The slider position after ``position`` (0 = bottom end), or None when cine should stop.

    Args:
        position: Current slider position, ``0 .. n_slices - 1``.
        n_slices: Slices of the plane.
        loop: Start again at 0 after the last slice.
    """
    if position + 1 < n_slices:
        return position + 1
    return 0 if loop and n_slices > 1 else None


class CineController(QObject):
    """Plays the slices of one of the views while ``state.cine_playing``.

    Args:
        state: The viewer state.
        views: The views by plane.
        parent: Qt parent.
    """

    def __init__(self, state: ViewerState, views: dict[Plane, SliceView], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.views = views
        #: The plane cine plays (the view that had focus when it started; axial by default).
        self.plane = Plane.AXIAL
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.step)
        self._off: list[Callable[[], None]] = [state.subscribe("cine", self._on_cine)]
        self.destroyed.connect(lambda *_: [off() for off in self._off])

    def play_in(self, plane: Plane | None) -> None:
        """Play (or stop) cine; when it starts, play ``plane`` (None: keep the last one)."""
        if plane is not None and not self.state.cine_playing:
            self.plane = Plane(plane)
        self.state.set_cine(playing=not self.state.cine_playing)

    def _on_cine(self) -> None:
        if self.state.cine_playing:
            self.timer.setInterval(max(1, int(round(1000.0 / self.state.cine_fps))))
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()

    def step(self) -> None:
        """One frame: the next slice, or stop at the end."""
        view = self.views[self.plane]
        layout = view.layout_
        if layout is None or view.slice_index < 0:
            self.state.set_cine(playing=False)
            return
        position = next_cine_position(layout.slider_value(view.slice_index), layout.n_slices, self.state.cine_loop)
        if position is None:
            self.state.set_cine(playing=False)
            return
        view.go_to_slice(layout.slice_from_slider(position))
