"""One view's segmentation-probability overlay: an ``ImageItem`` through an RGBA lookup table.

The pixels come from :mod:`app.overlay` (probability levels, outlines, the
findings' boxes). In the default "outline of findings" mode only the part of
the slice around the findings shown is gathered and drawn, so a slice change
stays cheap; the item is then placed on the slice at :attr:`ProbabilityOverlay.origin`.
Pixels are redrawn only when what they show changed (result, slice, mode,
threshold, boxes), and slices holding no probability are never drawn.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QTransform

from app.overlay import crop_around, keep_boxes, outline_u8, overlay_lut, probability_u8
from app.planes import PlaneLayout, slice_2d
from app.state import OverlayMode, ViewerState

Boxes = list[tuple[int, int, int, int]]


class ProbabilityOverlay:
    """The overlay item of one view, kept in line with the state by :meth:`update`.

    Args:
        state: The viewer state (result, overlay mode and opacity, threshold, Hide CAD, slab).
    """

    def __init__(self, state: ViewerState) -> None:
        self.state = state
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(1)
        #: ``(v0, u0)``: where the overlay image's first pixel lies in the slice (it covers only the shown findings).
        self.origin = (0, 0)
        self._slices_with_probability: np.ndarray | None = None
        self._lut_key: tuple | None = None
        self._pixels: tuple | None = None
        self._transform: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)

    def set_layout(self, layout: PlaneLayout | None) -> None:
        """A new volume (or none): the image transform of its slices; the pixels are drawn again."""
        if layout is None:
            self.item.clear()
            return
        self._transform = layout.image_transform()
        self._pixels = None
        self._place(0, 0)

    def set_result(self, layout: PlaneLayout | None) -> None:
        """A new result: note which slices hold any probability (most do not, and an empty overlay need not be drawn)."""
        result = self.state.result
        probability = None if result is None else result.seg_probability
        self._slices_with_probability = None
        if probability is not None and layout is not None:
            others = tuple(a for a in (0, 1, 2) if a != layout.slice_axis)
            self._slices_with_probability = np.any(probability, axis=others)

    def update(self, layout: PlaneLayout | None, slice_index: int, finding_boxes: Callable[[], Boxes]) -> None:
        """Bring the overlay in line with the state: table, opacity, visibility, and pixels when shown.

        Args:
            layout: The view's plane layout.
            slice_index: The slice shown.
            finding_boxes: ``(v0, v1, u0, u1)`` array ranges of the findings shown on that slice.
        """
        state = self.state
        mode = state.overlay_mode
        lut_key = (mode, state.seg_threshold)
        if lut_key != self._lut_key:
            self._lut_key = lut_key
            self.item.setLookupTable(overlay_lut(mode.value, state.seg_threshold))
        self.item.setOpacity(state.overlay_opacity)
        visible = (state.result is not None and mode != OverlayMode.OFF and not state.hide_cad
                   and not state.slab.enabled and self._on_slice(slice_index))  # an outline would not fit a slab
        boxes = finding_boxes() if visible and mode == OverlayMode.FINDINGS else []
        if mode == OverlayMode.FINDINGS and not boxes:
            visible = False
        if visible:
            outline = mode in (OverlayMode.OUTLINE, OverlayMode.FINDINGS)
            wanted = (
                state.result,
                slice_index,
                mode if outline else None,
                state.seg_threshold if outline else None,
                tuple(boxes),
            )
            if self._pixels is None or any(a is not b and a != b for a, b in zip(wanted, self._pixels)):
                self._draw(layout, slice_index, outline, boxes)
                self._pixels = wanted
        self.item.setVisible(visible)

    def _on_slice(self, slice_index: int) -> bool:
        flags = self._slices_with_probability
        return flags is not None and 0 <= slice_index < len(flags) and bool(flags[slice_index])

    def _draw(self, layout: PlaneLayout, slice_index: int, outline: bool, boxes: Boxes) -> None:
        """New overlay pixels for this slice; with findings' boxes, only the part of the slice around them."""
        state = self.state
        values = slice_2d(state.result.seg_probability, layout, slice_index)
        v0 = u0 = 0
        if boxes:  # a crop: a few small outlines need not cost a whole slice's gather, outline and draw
            v0, v1, u0, u1 = crop_around(boxes, values.shape)
            values = values[v0:v1, u0:u1]
            boxes = [(a - v0, b - v0, c - u0, d - u0) for a, b, c, d in boxes]
        levels = probability_u8(values)
        if outline:
            levels = outline_u8(levels, state.seg_threshold)
        if boxes:
            levels = keep_boxes(levels, boxes)
        self.item.setImage(levels, autoLevels=False, levels=(0, 255))
        self._place(v0, u0)

    def _place(self, v0: int, u0: int) -> None:
        """Put the overlay image's first pixel on slice pixel ``(v0, u0)``."""
        if (v0, u0) == self.origin and self._pixels is not None:
            return
        m11, m22, dx, dy = self._transform
        self.item.setTransform(QTransform(m11, 0.0, 0.0, m22, dx + m11 * u0, dy + m22 * v0))
        self.origin = (v0, u0)
