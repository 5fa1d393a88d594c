"""What is written and drawn over an image so it stays legible: text style, colours, a scale bar.

Text on a CT is read against anything from black air to white bone (and the
lung window makes the lung edges bright), so every label here has a dark
backing and a readable size. The scale bar picks a round length (1, 2, 5 ×
10ⁿ mm) that is about a sixth of the view wide.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QWidget

#: Style sheet of text pinned over an image: light text on a dark, rounded backing.
IMAGE_TEXT_STYLE = (
    "color: #f4f4f4; background: rgba(0, 0, 0, 170); border-radius: 3px; padding: 1px 5px; font-size: {size}px;"
    " font-weight: {weight};"
)
#: Near misses: a violet unlike the nodule yellow, the malignant red and the cyan overlay.
NEAR_MISS_RGB = (190, 140, 255)
#: Backing behind marker and ruler labels (RGBA).
LABEL_BACKING_RGBA = (0, 0, 0, 175)
#: Ruler colour, and the selected ruler's.
RULER_RGB = (120, 230, 255)
RULER_SELECTED_RGB = (255, 255, 255)
#: Round lengths the scale bar may show, mm.
_NICE = (1.0, 2.0, 5.0)


def image_text_style(size_px: int = 12, bold: bool = False) -> str:
    """The style sheet of a label over an image (dark backing)."""
    return IMAGE_TEXT_STYLE.format(size=int(size_px), weight="bold" if bold else "normal")


def label_font(point_size: float = 10.0, bold: bool = True) -> QFont:
    """The font of marker and ruler labels drawn in a view."""
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


def nice_scale_length(mm_per_px: float, target_px: float = 100.0) -> float:
    """The round length in mm (1, 2 or 5 × 10ⁿ) whose bar is nearest ``target_px`` pixels without exceeding 1.6×.

    Args:
        mm_per_px: Screen mm per pixel (> 0).
        target_px: Wanted bar length in pixels.

    Returns:
        A length in mm.

    Raises:
        ValueError: ``mm_per_px`` is not positive.
    """
    if not mm_per_px > 0 or not math.isfinite(mm_per_px):
        raise ValueError(f"mm per pixel must be positive, got {mm_per_px}")
    wanted = target_px * mm_per_px
    exponent = math.floor(math.log10(wanted))
    candidates = [n * 10.0**e for e in (exponent - 1, exponent, exponent + 1) for n in _NICE]
    fitting = [c for c in candidates if c / mm_per_px <= 1.6 * target_px]
    return min(fitting, key=lambda c: abs(math.log(c / wanted)))


class ScaleBar(QWidget):
    """A scale bar pinned to the bottom-right corner of its parent, an image view (transparent to the mouse).

    The widget is only as big as the bar's backing: a widget over the whole
    view would be composited on every repaint of the image below it. Call
    :meth:`set_mm_per_px` when the zoom changes (0 hides it) and :meth:`pin`
    when the parent is resized.
    """

    def __init__(self, parent: QWidget, target_px: float = 90.0) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.target_px = target_px
        self._mm_per_px = 0.0
        self.length_mm = 0.0
        self._font = label_font(9.0, bold=True)
        self.hide()

    def set_mm_per_px(self, mm_per_px: float) -> None:
        """The current scale (screen mm per pixel), 0 or less: nothing to draw."""
        if mm_per_px != self._mm_per_px:
            self._mm_per_px = float(mm_per_px)
            self.length_mm = nice_scale_length(mm_per_px, self.target_px) if mm_per_px > 0 else 0.0
            self.pin()
            self.update()

    def pin(self) -> None:
        """Size the widget to the bar and its text, in the parent's bottom-right corner; hidden with nothing to show."""
        parent = self.parentWidget()
        if self.length_mm <= 0 or parent is None:
            self.hide()
            return
        w, h = scale_bar_size(self.bar_px, self.text(), self._font)
        self.setGeometry(max(0, parent.width() - w), max(0, parent.height() - h), w, h)
        self.show()

    @property
    def bar_px(self) -> float:
        """Length of the drawn bar in pixels."""
        return self.length_mm / self._mm_per_px if self._mm_per_px > 0 else 0.0

    def text(self) -> str:
        """What the bar says (``"10 mm"``)."""
        return f"{self.length_mm:g} mm" if self.length_mm else ""

    def paintEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self.length_mm <= 0:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        paint_scale_bar(painter, QRectF(self.rect()), self.bar_px, self.text(), self._font)
        painter.end()


#: Margin around a scale bar's backing, and the padding inside it, px.
_BAR_MARGIN, _BAR_PAD = 6.0, 4.0


def _backing(bar_px: float, text: str, font: QFont) -> tuple[float, float, float]:
    """``(width, height, text height)`` of a scale bar's dark backing, padding included, px."""
    metrics = QFontMetricsF(font)
    text_h = metrics.height()
    return max(bar_px, metrics.horizontalAdvance(text)) + 2 * _BAR_PAD, text_h + 10.0 + 2 * _BAR_PAD, text_h


def scale_bar_size(bar_px: float, text: str, font: QFont) -> tuple[int, int]:
    """Width and height in whole pixels of what :func:`paint_scale_bar` draws, with its margin."""
    width, height, _ = _backing(bar_px, text, font)
    return int(math.ceil(width + _BAR_MARGIN)) + 1, int(math.ceil(height + _BAR_MARGIN)) + 1


def paint_scale_bar(painter: QPainter, area: QRectF, bar_px: float, text: str, font: QFont) -> None:
    """Draw a scale bar with its text at the bottom-right of ``area``, on a dark backing."""
    margin, pad = _BAR_MARGIN, _BAR_PAD
    width, height, text_h = _backing(bar_px, text, font)
    box = QRectF(area.right() - margin - width, area.bottom() - margin - height, width, height)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(*LABEL_BACKING_RGBA))
    painter.drawRoundedRect(box, 3.0, 3.0)
    y = box.bottom() - pad - 3.0
    x1 = box.right() - pad
    x0 = x1 - bar_px
    pen = QPen(QColor(245, 245, 245))
    pen.setWidthF(2.0)
    painter.setPen(pen)
    painter.drawLine(QPointF(x0, y), QPointF(x1, y))
    painter.drawLine(QPointF(x0, y - 4), QPointF(x0, y + 2))
    painter.drawLine(QPointF(x1, y - 4), QPointF(x1, y + 2))
    painter.setFont(font)
    painter.drawText(QRectF(box.left(), box.top() + pad - 1, box.width(), text_h), Qt.AlignmentFlag.AlignHCenter, text)


def text_item_rect(item, viewbox) -> QRectF:
    """Where a ``pg.TextItem`` in a view box is drawn, in scene pixels (it keeps its pixel size at any zoom).

    Args:
        item: The text item (``pos()`` in view coordinates, ``anchor`` as fractions of its size).
        viewbox: The ``pg.ViewBox`` it was added to.
    """
    size = item.textItem.boundingRect().size()
    at = viewbox.mapViewToScene(item.pos())
    ax, ay = float(item.anchor[0]), float(item.anchor[1])
    return QRectF(at.x() - ax * size.width(), at.y() - ay * size.height(), size.width(), size.height())


class CrosshairLine(QGraphicsPathItem):
    """One line of the crosshair as segments (point pairs) in view coordinates: a cached path, rebuilt only when it moves.

    Cheaper per slice change than a plot curve: no data bounds, no NaN checks,
    and an unchanged line (the other views' lines while one view scrolls) costs
    nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._xs = np.zeros(0)
        self._ys = np.zeros(0)

    def set_segments(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """Draw the segments ``(xs[0], ys[0])–(xs[1], ys[1])``, ``(xs[2], ys[2])–(xs[3], ys[3])``, … (screen mm)."""
        xs = np.asarray(xs, dtype=np.float64).reshape(-1)
        ys = np.asarray(ys, dtype=np.float64).reshape(-1)
        if xs.shape == self._xs.shape and ys.shape == self._ys.shape and np.array_equal(xs, self._xs) \
                and np.array_equal(ys, self._ys):
            return
        self._xs, self._ys = xs, ys
        path = QPainterPath()
        for k in range(0, min(len(xs), len(ys)) - 1, 2):
            path.moveTo(float(xs[k]), float(ys[k]))
            path.lineTo(float(xs[k + 1]), float(ys[k + 1]))
        self.setPath(path)

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(xs, ys)`` of the segments' ends, as given to :meth:`set_segments`."""
        return self._xs, self._ys
