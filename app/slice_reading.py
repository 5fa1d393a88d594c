"""The reading tools of a slice view: slab range, go-to-finding zoom, crosshair gap, the ruler.

A mixin of :class:`app.slice_view.SliceView` (it uses the view's state, layout,
slice, view box and layers); kept apart so the view stays one screen of code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF

from app.findings import marker_radius_mm
from app.measurements import ruler_length_mm
from app.slab import slab_range

if TYPE_CHECKING:
    from app.measure_layer import MeasureLayer
    from app.slice_markers import MarkerLayer
    from app.planes import PlaneLayout
    from app.state import ViewerState

#: Half-length, in mm, of the gap left in the crosshair around its centre.
CROSSHAIR_GAP_MM = 10.0
#: Extra crosshair gap, mm, beyond a selected finding's circle.
LESION_GAP_MARGIN_MM = 1.5
#: How close (screen pixels) a click must be to a ruler to select it.
PICK_PX = 8.0


class SliceReadingTools:
    """Slab, zoom-to-finding, crosshair gap and ruler behaviour of a slice view (mixin)."""

    state: ViewerState
    layout_: PlaneLayout | None
    measure_layer: MeasureLayer
    marker_layer: MarkerLayer
    _slice: int
    _zoomed_to: int | None

    def crosshair_gap_mm(self) -> float:
        """Half-length of the crosshair's gap: around the selected finding when the crosshair is on it."""
        finding = None if self.state.selected_id is None else self.state.findings.by_id(self.state.selected_id)
        if finding is None or self.state.hide_cad:
            return CROSSHAIR_GAP_MM
        centre = tuple(int(np.floor(float(c) + 0.5)) for c in finding.candidate.center_irc)
        if centre != tuple(self.state.crosshair):
            return CROSSHAIR_GAP_MM
        circle = float(marker_radius_mm(0.5 * float(finding.candidate.diameter_mm), 0.0))
        return max(CROSSHAIR_GAP_MM, circle + LESION_GAP_MARGIN_MM)

    def slab_range(self) -> tuple[int, int] | None:
        """First and last slice of the slab shown, or None when the slab is off."""
        slab = self.state.slab
        if not slab.enabled or self.layout_ is None or self._slice < 0:
            return None
        return slab_range(self._slice, self.layout_.n_slices, slab.thickness_mm, self.layout_.spacing_slice)

    def _on_slab(self) -> None:
        if self.layout_ is not None and self._slice >= 0:
            self._show_slice()
            self._update_info()

    def _on_selection(self) -> None:
        """Draw the selection; a newly selected finding is zoomed to and the crosshair opens around it."""
        self._refresh_markers()
        selected = self.state.selected_id
        finding = None if selected is None else self.state.findings.by_id(selected)
        if finding is not None and selected != self._zoomed_to and self.layout_ is not None:
            self.zoom_to(finding.candidate.center_irc, self.state.finding_fov_mm)
        self._zoomed_to = selected
        self._on_crosshair()

    def zoom_to(self, center_irc, fov_mm: float) -> None:
        """Show a square field of ``fov_mm`` centred on a voxel position (continuous irc)."""
        if self.layout_ is None:
            return
        u, v = self.layout_.to_screen(np.asarray(center_irc, dtype=np.float64))
        half = 0.5 * float(fov_mm)
        self.viewbox.setRange(QRectF(u - half, v - half, 2 * half, 2 * half), padding=0.0)

    def _refresh_measurements(self) -> None:
        self.measure_layer.show(self.state.measurements, self.layout_, self._slice, self.state.selected_measurement,
                                self._tick_mm(), self.marker_layer.label_rects(self.viewbox) if self.state.measurements else ())

    def _tick_mm(self) -> float:
        return 4.0 * self._mm_per_px()[0]

    def _irc_at(self, pos: QPointF) -> tuple[float, float, float] | None:
        """Continuous voxel position (index, row, col) of view point ``pos`` on this slice, clipped to the plane."""
        layout = self.layout_
        if layout is None or self._slice < 0:
            return None
        a, b = layout.from_screen(float(pos.x()), float(pos.y()))
        irc = [0.0, 0.0, 0.0]
        irc[layout.slice_axis] = float(self._slice)
        irc[layout.u_axis] = float(np.clip(a, -0.5, layout.n_u - 0.5))
        irc[layout.v_axis] = float(np.clip(b, -0.5, layout.n_v - 0.5))
        return irc[0], irc[1], irc[2]

    def drag_ruler(self, start: QPointF, end: QPointF, finished: bool) -> None:
        """Ruler tool: show the line from ``start`` to ``end`` (view points); on release add the measurement."""
        a, b = self._irc_at(start), self._irc_at(end)
        if a is None or b is None:
            return
        length = ruler_length_mm(self.state.volume.geometry, a, b)
        if not finished:
            p0, p1 = self.layout_.to_screen(np.array(a)), self.layout_.to_screen(np.array(b))
            self.measure_layer.preview(p0, p1, f"{length:.1f} mm", self._tick_mm())
            return
        self.measure_layer.preview(None, None)
        if length >= 2.0 * self._mm_per_px()[0]:  # a shaky click is not a measurement
            self.state.new_measurement(self.layout_.slice_axis, self._slice, a, b)

    def pick_measurement(self, pos: QPointF) -> None:
        """Ruler tool click: select the measurement under the mouse (or none)."""
        tolerance_mm = PICK_PX * self._mm_per_px()[0]
        self.state.select_measurement(self.measure_layer.nearest(float(pos.x()), float(pos.y()), tolerance_mm))

