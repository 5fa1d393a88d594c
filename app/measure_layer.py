"""The ruler lines of one slice view: the measurements on its slice, their lengths, and the one being drawn.

Each measurement is a line with short end ticks and its length on a dark
backing, drawn in screen mm (below the line rather than over a finding's
number); the selected one is white and thicker. While the
reader drags with the ruler tool on, a preview line follows the mouse with the
live length.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor

from app.measurements import Measurement
from app.planes import PlaneLayout
from app.view_overlays import LABEL_BACKING_RGBA, RULER_RGB, RULER_SELECTED_RGB, label_font, text_item_rect


def _tick_path(p0: np.ndarray, p1: np.ndarray, tick_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the line from ``p0`` to ``p1`` plus a tick across each end (pairs for ``connect="pairs"``)."""
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9) * tick_mm
    points = np.array([p0, p1, p0 - n, p0 + n, p1 - n, p1 + n])
    return points[:, 0], points[:, 1]


class MeasureLayer:
    """Ruler items of one view (added to its view box).

    Args:
        viewbox: The view's ``pg.ViewBox`` (screen-mm coordinates).
    """

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self._viewbox = viewbox
        self._lines: list[pg.PlotCurveItem] = []
        self._labels: list[pg.TextItem] = []
        self.preview_line = self._new_line()
        self.preview_label = self._new_label()
        #: (id, start uv, end uv) of the measurements drawn on the current slice.
        self.shown: list[tuple[int, np.ndarray, np.ndarray]] = []

    def _new_line(self) -> pg.PlotCurveItem:
        line = pg.PlotCurveItem(connect="pairs", antialias=True)
        line.setZValue(6)
        self._viewbox.addItem(line)
        line.hide()
        return line

    def _new_label(self) -> pg.TextItem:
        label = pg.TextItem(anchor=(0.0, 1.0), fill=pg.mkBrush(*LABEL_BACKING_RGBA))
        label.setFont(label_font(10.0))
        label.setZValue(7)
        self._viewbox.addItem(label)
        label.hide()
        return label

    def show(self, measurements: tuple[Measurement, ...], layout: PlaneLayout | None, slice_index: int,
             selected: int | None, tick_mm: float, avoid: Sequence[QRectF] = ()) -> None:
        """Draw the measurements made on this plane's slice ``slice_index`` (others are hidden).

        ``avoid``: scene-pixel rectangles (the finding numbers) a length label should not cover; a
        label that would is put below the ruler's lower end instead.
        """
        drawn = []
        if layout is not None:
            for m in measurements:
                if m.axis == layout.slice_axis and m.slice_index == slice_index:
                    drawn.append((m, layout.to_screen(np.array(m.start_irc)), layout.to_screen(np.array(m.end_irc))))
        while len(self._lines) < len(drawn):
            self._lines.append(self._new_line())
            self._labels.append(self._new_label())
        for k, line in enumerate(self._lines):
            label = self._labels[k]
            if k >= len(drawn):
                line.hide()
                label.hide()
                continue
            m, p0, p1 = drawn[k]
            chosen = m.id == selected
            rgb = RULER_SELECTED_RGB if chosen else RULER_RGB
            line.setPen(pg.mkPen(QColor(*rgb), width=2.5 if chosen else 1.8))
            line.setData(*_tick_path(p0, p1, tick_mm))
            line.show()
            label.setText(m.label(), color=QColor(*rgb))
            self._place(label, p0, p1, avoid)
            label.show()
        self.shown = [(m.id, p0, p1) for m, p0, p1 in drawn]

    def _place(self, label: pg.TextItem, p0: np.ndarray, p1: np.ndarray, avoid: Sequence[QRectF]) -> None:
        """Above the ruler's higher end; below its lower end when that would cover a finding's number."""
        label.setAnchor((0.0, 1.0))
        label.setPos(*self._label_anchor(p0, p1))
        if avoid and any(text_item_rect(label, self._viewbox).intersects(r) for r in avoid):
            low = p1 if p0[1] < p1[1] else p0
            label.setAnchor((0.0, 0.0))
            label.setPos(float(low[0]), float(low[1]))

    @staticmethod
    def _label_anchor(p0: np.ndarray, p1: np.ndarray) -> tuple[float, float]:
        """Beside the end that is higher on screen (labels sit above their anchor)."""
        end = p0 if p0[1] < p1[1] else p1
        return float(end[0]), float(end[1])

    def preview(self, p0: np.ndarray | None, p1: np.ndarray | None, text: str = "", tick_mm: float = 1.0) -> None:
        """Show the line being drawn (``p0`` None hides it)."""
        if p0 is None or p1 is None:
            self.preview_line.hide()
            self.preview_label.hide()
            return
        self.preview_line.setPen(pg.mkPen(QColor(*RULER_SELECTED_RGB), width=2.0))
        self.preview_line.setData(*_tick_path(np.asarray(p0, float), np.asarray(p1, float), tick_mm))
        self.preview_line.show()
        self.preview_label.setText(text, color=QColor(*RULER_SELECTED_RGB))
        self.preview_label.setPos(*self._label_anchor(np.asarray(p0, float), np.asarray(p1, float)))
        self.preview_label.show()

    def nearest(self, u: float, v: float, tolerance_mm: float) -> int | None:
        """Id of the drawn measurement closest to point ``(u, v)`` within ``tolerance_mm``, or None."""
        best, best_d = None, float(tolerance_mm)
        p = np.array([u, v], dtype=np.float64)
        for mid, p0, p1 in self.shown:
            d = p1 - p0
            t = float(np.clip(np.dot(p - p0, d) / max(float(np.dot(d, d)), 1e-12), 0.0, 1.0))
            distance = float(np.hypot(*(p - (p0 + t * d))))
            if distance <= best_d:
                best, best_d = mid, distance
        return best
