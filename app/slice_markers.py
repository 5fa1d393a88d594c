"""The findings drawn on one slice view: a circle per finding and its number, stacked where they would overprint.

A circle is drawn on every slice a finding spans (``ScatterPlotItem`` with
``pxMode=False``, sized in screen mm): solid yellow for nodules, red when
malignant, dashed violet for near misses (another colour *and* another line),
dotted grey once rejected, thicker when selected. On a slab, every finding the
slab cuts is drawn, sized for its nearest slice in the slab. The numbers go
next to their circles in bold on a dark backing; labels that would overprint
are stacked into one (:func:`app.marker_labels.stack_labels`), the selected or
most likely finding first, and are laid out again when the zoom changes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen

from app.findings import Finding, FindingClass, Mark, PlaneMarkers, marker_radius_mm, plane_markers
from app.marker_labels import stack_labels
from app.planes import PlaneLayout
from app.theme import MALIGNANT_RGB, NODULE_RGB, REJECTED_RGB
from app.view_overlays import LABEL_BACKING_RGBA, NEAR_MISS_RGB, label_font, text_item_rect

#: Most finding numbers drawn next to markers on one slice.
MAX_LABELS = 24


class MarkerLayer:
    """The markers and labels of one view, added to its view box.

    Args:
        viewbox: The view's ``pg.ViewBox`` (screen-mm coordinates).
        mm_per_px: Screen mm per screen pixel along u and v, asked each time
            labels are laid out (the zoom changes it).
    """

    def __init__(self, viewbox: pg.ViewBox, mm_per_px: Callable[[], tuple[float, float]]) -> None:
        self._mm_per_px = mm_per_px
        self.scatter = pg.ScatterPlotItem(pxMode=False, symbol="o", brush=pg.mkBrush(None), antialias=True)
        self.scatter.setZValue(3)
        self.labels = [pg.TextItem(anchor=(0.0, 1.0), fill=pg.mkBrush(*LABEL_BACKING_RGBA)) for _ in range(MAX_LABELS)]
        viewbox.addItem(self.scatter)
        font = label_font(11.0)
        for label in self.labels:
            label.setFont(font)
            viewbox.addItem(label)
            label.setZValue(4)
            label.hide()
        self.findings: tuple[Finding, ...] = ()
        self.plane_markers: PlaneMarkers | None = None
        #: Label anchors (screen mm), findings and pens of the markers on the current slice.
        self._shown: tuple[np.ndarray, np.ndarray, list[Finding], list[QPen]] | None = None
        self._pens: dict[tuple, QPen] = {}
        self._selected: int | None = None
        self._label_looks: list[tuple[str, int] | None] = [None] * MAX_LABELS

    def set_findings(self, findings: tuple[Finding, ...], layout: PlaneLayout | None) -> None:
        """The findings to draw (positions projected onto the plane of ``layout``; none without a layout)."""
        self.findings = findings
        self.plane_markers = plane_markers(findings, layout) if layout is not None else None

    def clear(self) -> None:
        """Draw nothing (no volume, or the markers are hidden)."""
        self.plane_markers = None
        self.scatter.clear()
        self._shown = None
        self.place_labels()

    def show_slice(
        self, slice_index: int, selected_id: int | None, hidden: bool, span: tuple[int, int] | None = None
    ) -> None:
        """Draw the findings that span slice ``slice_index``, or cut the slab ``span`` (nothing when ``hidden``)."""
        pm = self.plane_markers
        self._selected = selected_id
        if pm is None or slice_index < 0 or hidden or len(pm.index) == 0:
            self.scatter.clear()
            self._shown = None
            self.place_labels()
            return
        hit, radius = pm.on_slice(slice_index) if span is None else self._on_slab(pm, span)
        findings = [self.findings[k] for k in hit]
        pens = [self.pen(f, f.id == selected_id) for f in findings]
        self.scatter.setData(x=pm.u_mm[hit], y=pm.v_mm[hit], size=2.0 * radius, pen=pens, brush=pg.mkBrush(None))
        u = pm.u_mm[hit] + 0.72 * radius
        v = pm.v_mm[hit] - 0.72 * radius
        self._shown = (u, v, findings, pens)
        self.place_labels()

    @staticmethod
    def _on_slab(pm: PlaneMarkers, span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Markers of the findings whose slices meet the slab, sized for the slab slice nearest their centre."""
        lo, hi = span
        hit = np.flatnonzero((pm.first <= hi) & (lo <= pm.last))
        nearest = np.clip(pm.center_slice[hit], lo, hi)
        distance = np.abs(nearest - pm.center_slice[hit]) * pm.spacing_slice
        return hit, marker_radius_mm(pm.radius_mm[hit], distance)

    def boxes_on_slice(self, slice_index: int, layout: PlaneLayout | None) -> list[tuple[int, int, int, int]]:
        """``(v0, v1, u0, u1)`` array ranges of the findings drawn on slice ``slice_index``."""
        pm = self.plane_markers
        if pm is None or layout is None or len(pm.index) == 0:
            return []
        hit, _radius = pm.on_slice(slice_index)
        boxes = []
        for k in hit:
            bbox = getattr(self.findings[k].candidate, "bbox_irc", None)
            if bbox is None:
                continue
            lo, hi = bbox
            boxes.append((int(lo[layout.v_axis]), int(hi[layout.v_axis]), int(lo[layout.u_axis]), int(hi[layout.u_axis])))
        return boxes

    def pen(self, finding: Finding, selected: bool) -> QPen:
        """The circle's pen for ``finding`` (cached per look)."""
        near = finding.klass == FindingClass.NEAR_MISS
        rejected = finding.mark == Mark.REJECTED
        key = (near, finding.malignant, rejected, selected)
        pen = self._pens.get(key)
        if pen is None:
            rgb = REJECTED_RGB if rejected else (
                NEAR_MISS_RGB if near else (MALIGNANT_RGB if finding.malignant else NODULE_RGB))
            alpha = 170 if rejected else (220 if near else 255)
            width = 3.5 if selected else (2.0 if near or rejected else 2.5)
            pen = pg.mkPen(QColor(*rgb, alpha), width=width)
            if rejected:
                pen.setStyle(Qt.PenStyle.DotLine)
            elif near:
                pen.setStyle(Qt.PenStyle.DashLine)
            self._pens[key] = pen
        return pen

    def label_rects(self, viewbox: pg.ViewBox) -> list[QRectF]:
        """Scene-pixel rectangles of the finding numbers shown (what a ruler's label should not cover)."""
        return [text_item_rect(label, viewbox) for label in self.labels if label.isVisible()]

    def place_labels(self) -> None:
        """Write the findings' numbers next to their markers, stacking the ones that would overprint."""
        shown = self._shown
        if shown is None or not shown[2]:
            for label in self.labels:
                label.hide()
            return
        u, v, findings, pens = shown
        names = []
        for f in findings:
            mark = " ✓" if f.mark == Mark.ACCEPTED else (" ✗" if f.mark == Mark.REJECTED else "")
            names.append(f"{f.number or f.id}{mark}")  # the display number, as in the table
        priority = np.array([2.0 if f.id == self._selected else float(f.candidate.p_nodule) for f in findings])
        mm_u, mm_v = self._mm_per_px()
        stacked = stack_labels(u / mm_u, v / mm_v, names, priority)
        for n, label in enumerate(self.labels):
            if n < len(stacked):
                item = stacked[n]
                look = (item.text, pens[item.leader].color().rgba())
                if self._label_looks[n] != look:  # re-laying out a text item costs more than moving it
                    label.setText(item.text, color=pens[item.leader].color())
                    self._label_looks[n] = look
                label.setPos(float(u[item.leader]), float(v[item.leader]))
                label.show()
            else:
                label.hide()
