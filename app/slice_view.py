"""One plane of the CT (axial, coronal or sagittal), drawn with pyqtgraph and bound to the state.

The view owns no state: the slice it shows is the crosshair's coordinate along
its slice axis, its grey levels are the state's window. It draws, in screen mm
(so anisotropic voxels keep their aspect):

* the HU slice as a ``float32`` ``ImageItem`` with explicit levels — a
  window/level drag only calls ``setLevels``; sagittal slices are read a few
  at a time (:mod:`app.slice_blocks`);
* the segmentation probability as a second ``ImageItem`` through an RGBA
  lookup table (:mod:`app.overlay_layer`; in the default "outline of findings"
  mode only the part of the slice around the findings shown, so a slice change
  stays cheap);
* a circle and the number of each finding on every slice it spans
  (:mod:`app.slice_markers`);
* the reader's ruler measurements on this slice (:mod:`app.measure_layer`);
* the crosshair, with a gap so it does not cover what it points at (around a
  selected finding: its circle);
* orientation letters, slice number and position, the current window and a
  scale bar, on dark backings.

With the thin slab on (:mod:`app.slab`) the image is the MIP, MinIP or average
of the slices around the crosshair and the markers of every finding the slab
cuts are drawn. Selecting a finding zooms to ``state.finding_fov_mm`` around it.

Mouse (:mod:`app.slice_canvas`): left click/drag moves the crosshair,
right-drag changes window/level (horizontal = width, vertical = level),
middle-drag pans, wheel scrolls slices, Ctrl+wheel zooms; with the ruler tool
on, left-drag measures and a click selects a measurement. Keys: Up/Down one
slice, PgUp/PgDn ten, Home/End the ends, Delete removes the selected measurement.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from app.measure_layer import MeasureLayer
from app.overlay_layer import ProbabilityOverlay
from app.planes import Plane, PlaneLayout, patient_axes, plane_layout
from app.slab import SlabProjector
from app.slice_blocks import SliceBlocks
from app.slice_canvas import SliceCanvas, SliceViewBox
from app.slice_markers import MarkerLayer
from app.slice_reading import SliceReadingTools
from app.state import OverlayMode, ViewerState
from app.theme import PLANE_RGB
from app.view_overlays import CrosshairLine
from app.windowing import drag_window
from engine.geometry import irc_to_xyz

#: Slices moved by PgUp/PgDn.
PAGE_STEP = 10
#: Milliseconds between two cursor readouts (rate limit).
HOVER_INTERVAL_MS = 40

_PLANE_OF_PATIENT_AXIS = {0: Plane.SAGITTAL, 1: Plane.CORONAL, 2: Plane.AXIAL}


class SliceView(SliceReadingTools, QWidget):
    """One plane of the CT, bound to a :class:`ViewerState`.

    Args:
        state: The viewer state it shows and writes to.
        plane: Which plane.
        parent: Qt parent.

    Signals:
        hovered(object): the voxel (index, row, col) under the cursor, or None;
            rate-limited to one every ``HOVER_INTERVAL_MS``.
    """

    hovered = Signal(object)

    def __init__(self, state: ViewerState, plane: Plane, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plane = Plane(plane)
        self.layout_: PlaneLayout | None = None
        self._slice = -1
        self._projector: SlabProjector | None = None
        self._slices: SliceBlocks | None = None
        self._zoomed_to: int | None = None
        self._wl_start = state.window
        self._line_planes = (Plane.SAGITTAL, Plane.CORONAL)
        self._hover_pos: QPointF | None = None
        self._hover_timer = QTimer(self, singleShot=True, interval=HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._emit_hover)
        self._build()
        self._unsubscribe: list[Callable[[], None]] = [
            state.subscribe("volume", self._on_volume),
            state.subscribe("crosshair", self._on_crosshair),
            state.subscribe("window", self._on_window),
            state.subscribe("overlay", self._on_overlay),
            state.subscribe("result", self._on_result),
            state.subscribe("findings", self._on_findings),
            state.subscribe("selection", self._on_selection),
            state.subscribe("cad", self._on_cad),
            state.subscribe("measurements", self._refresh_measurements),
            state.subscribe("slab", self._on_slab),
        ]
        self.destroyed.connect(self._disconnect_state)
        self._on_volume()

    # --- construction -------------------------------------------------------------
    def _build(self) -> None:
        rgb = PLANE_RGB[self.plane.value]
        self.title = QLabel(self.plane.value.capitalize())
        self.title.setStyleSheet(f"color: rgb{rgb}; font-weight: bold; padding: 0 4px;")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self._on_slider)
        self.slice_text = QLabel("")
        self.slice_text.setMinimumWidth(70)
        self.slice_text.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        header = QHBoxLayout()
        header.setContentsMargins(2, 1, 2, 1)
        header.addWidget(self.title)
        header.addWidget(self.slider, 1)
        header.addWidget(self.slice_text)

        self.canvas = SliceCanvas(self)
        self.viewbox = SliceViewBox(self)
        self.canvas.setCentralItem(self.viewbox)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay_layer = ProbabilityOverlay(self.state)
        self.overlay = self.overlay_layer.item
        self.cross_h = CrosshairLine()
        self.cross_v = CrosshairLine()
        for item in (self.cross_h, self.cross_v):
            item.setZValue(2)
        for item in (self.image, self.overlay, self.cross_h, self.cross_v):
            self.viewbox.addItem(item)
        self.marker_layer = MarkerLayer(self.viewbox, self._mm_per_px)
        self.markers = self.marker_layer.scatter
        self.labels = self.marker_layer.labels
        self.measure_layer = MeasureLayer(self.viewbox)
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.viewbox.sigRangeChanged.connect(self._on_range_changed)

        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addLayout(header)
        box.addWidget(self.canvas, 1)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def _on_range_changed(self, *_args) -> None:
        self.marker_layer.place_labels()  # zoom changes what overlaps
        if self.state.measurements:
            self._refresh_measurements()  # ... and where a ruler's length may go
        self.canvas.scale_bar.set_mm_per_px(self._mm_per_px()[0] if self.layout_ is not None else 0.0)

    def _set_text(self, label: QLabel, text: str) -> None:
        if label.text() != text:  # a slice change rewrites the info line; the other views' lines stay as they are
            label.setText(text)
            self.canvas.place_labels()

    def _disconnect_state(self, *_args) -> None:
        for off in self._unsubscribe:
            off()
        self._unsubscribe = []

    # --- state → view -------------------------------------------------------------
    @property
    def slice_index(self) -> int:
        """The slice shown (index along the plane's slice axis), -1 with no volume."""
        return self._slice

    def _on_volume(self) -> None:
        ct = self.state.volume
        self._slice = -1
        self._zoomed_to = None
        self.marker_layer.plane_markers = None
        if ct is None:
            self.layout_ = None
            self._projector = None
            self._slices = None
            self.measure_layer.show((), None, -1, None, 1.0)
            self.image.clear()
            self.overlay_layer.set_layout(None)
            self.marker_layer.clear()
            self.cross_h.set_segments([], [])
            self.cross_v.set_segments([], [])
            self.slider.setEnabled(False)
            for lab in self.canvas.letters.values():
                lab.setText("")
            self.canvas.info.setText("")
            self.canvas.window_text.setText("")
            self.canvas.placeholder.setText("No series open" if self.plane != Plane.AXIAL else
                                            "No series open\nFile ▸ Open, Open DICOM folder, or drop a file here")
            self.canvas.placeholder.show()
            self.canvas.scale_bar.set_mm_per_px(0.0)
            self.canvas.place_labels()
            return
        self.canvas.placeholder.setText("")
        self.canvas.placeholder.hide()  # an empty label over the whole view would still be painted on every repaint
        layout = plane_layout(ct.geometry, ct.shape, self.plane)
        self.layout_ = layout
        self._projector = SlabProjector(ct.hu, layout)
        self._slices = SliceBlocks(ct.hu, layout)
        axes = patient_axes(ct.geometry)
        self._line_planes = (_PLANE_OF_PATIENT_AXIS[axes[layout.u_axis][0]], _PLANE_OF_PATIENT_AXIS[axes[layout.v_axis][0]])
        self.cross_v.setPen(pg.mkPen(*PLANE_RGB[self._line_planes[0].value], 150, width=1))
        self.cross_h.setPen(pg.mkPen(*PLANE_RGB[self._line_planes[1].value], 150, width=1))
        m11, m22, dx, dy = layout.image_transform()
        self.image.setTransform(QTransform(m11, 0.0, 0.0, m22, dx, dy))
        self.overlay_layer.set_layout(layout)
        for lab, text in zip(self.canvas.letters.values(), layout.letters):
            lab.setText(text)
        self.canvas.place_labels()
        self.slider.blockSignals(True)
        self.slider.setRange(0, layout.n_slices - 1)
        self.slider.setPageStep(PAGE_STEP)
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        self._on_window()
        self._on_result()
        self._on_findings()
        self._on_crosshair()
        self.reset_view()

    def _on_crosshair(self) -> None:
        layout = self.layout_
        if layout is None:
            return
        irc = self.state.crosshair
        index = irc[layout.slice_axis]
        if index != self._slice:
            self._slice = index
            self._show_slice()
        u, v = layout.to_screen(np.asarray(irc, dtype=np.float64))
        w, h, g = layout.width_mm, layout.height_mm, self.crosshair_gap_mm()
        self.cross_h.set_segments(np.array([0.0, max(0.0, u - g), min(w, u + g), w]), np.full(4, v))
        self.cross_v.set_segments(np.full(4, u), np.array([0.0, max(0.0, v - g), min(h, v + g), h]))
        self._update_info()

    def _show_slice(self) -> None:
        """Put the current slice's (or slab's) pixels, overlay and markers on screen (one slice change)."""
        layout, slab = self.layout_, self.state.slab
        if slab.enabled and self._projector is not None:
            pixels = self._projector.project(self._slice, slab.mode, slab.thickness_mm)
        else:
            pixels = self._slices.slice(self._slice)
        self.image.setImage(pixels, autoLevels=False, levels=self.state.window.levels)
        self._on_overlay()
        self._refresh_markers()
        self._refresh_measurements()
        self.slider.blockSignals(True)
        self.slider.setValue(layout.slider_value(self._slice))
        self.slider.blockSignals(False)
        self.slice_text.setText(f"{self._slice + 1}/{layout.n_slices}")

    def _update_info(self) -> None:
        layout, ct = self.layout_, self.state.volume
        xyz = irc_to_xyz(ct.geometry, self.state.crosshair)
        k = patient_axes(ct.geometry)[layout.slice_axis][0]
        name = "xyz"[k]
        span = self.slab_range()
        slab = "" if span is None else (
            f"\n{self.state.slab.mode.label} slab {(span[1] - span[0] + 1) * layout.spacing_slice:.1f} mm"
            f" (slices {span[0] + 1}–{span[1] + 1})"
        )
        self._set_text(self.canvas.info, (
            f"{self.plane.value.capitalize()}  {self._slice + 1}/{layout.n_slices}\n"
            f"{name} {xyz[k]:.1f} mm · spacing {layout.spacing_slice:.2f} mm" + slab
        ))

    def _on_window(self) -> None:
        if self.layout_ is None:
            return
        window = self.state.window
        self.image.setLevels(window.levels)
        self._set_text(self.canvas.window_text, window.label())

    @property
    def overlay_origin(self) -> tuple[int, int]:
        """``(v0, u0)``: where the overlay image's first pixel lies in the slice (it covers only the shown findings)."""
        return self.overlay_layer.origin

    def _on_result(self) -> None:
        self.overlay_layer.set_result(self.layout_)
        self._on_overlay()

    def _on_overlay(self) -> None:
        self.overlay_layer.update(self.layout_, self._slice, self._finding_boxes)

    def _finding_boxes(self) -> list[tuple[int, int, int, int]]:
        """``(v0, v1, u0, u1)`` array ranges of the findings shown on this slice."""
        return self.marker_layer.boxes_on_slice(self._slice, self.layout_)

    def _on_cad(self) -> None:
        self._on_overlay()
        self._refresh_markers()

    def _on_findings(self) -> None:
        self.marker_layer.set_findings(self.state.findings.findings, self.layout_)
        self._on_overlay()
        self._refresh_markers()

    def _refresh_markers(self) -> None:
        self.marker_layer.show_slice(self._slice, self.state.selected_id, self.state.hide_cad, self.slab_range())
        if self.state.measurements:
            self._refresh_measurements()  # the rulers' lengths keep clear of the numbers just placed

    def _mm_per_px(self) -> tuple[float, float]:
        """Screen mm per screen pixel along u and v (1, 1 while the view has no size yet)."""
        try:
            sizes = [abs(float(a)) for a in self.viewbox.viewPixelSize()]
        except (TypeError, AttributeError, ZeroDivisionError):  # not laid out: no device transform yet
            return 1.0, 1.0
        return tuple(a if np.isfinite(a) and a > 0 else 1.0 for a in sizes)  # type: ignore[return-value]

    # --- view → state -------------------------------------------------------------
    def scroll(self, steps: int) -> None:
        """Move ``steps`` slices "up" (towards superior/anterior/left; negative: down)."""
        if self.layout_ is not None and steps:
            self.state.move_slice(self.layout_.slice_axis, int(steps) * self.layout_.slice_sign)

    def go_to_slice(self, index: int) -> None:
        """Show slice ``index`` (along this plane's slice axis)."""
        if self.layout_ is None:
            return
        irc = list(self.state.crosshair)
        irc[self.layout_.slice_axis] = int(index)
        self.state.set_crosshair(irc)

    def point_at(self, pos: QPointF) -> None:
        """Move the crosshair to the voxel at view point ``pos`` (screen mm) on this slice."""
        if self.layout_ is None:
            return
        u = float(np.clip(pos.x(), 0.0, self.layout_.width_mm - 1e-6))
        v = float(np.clip(pos.y(), 0.0, self.layout_.height_mm - 1e-6))
        voxel = self.layout_.voxel_at(u, v, self._slice)
        if voxel is not None:
            self.state.set_crosshair(voxel)

    def drag_window(self, start: bool, dx_px: float, dy_px: float) -> None:
        """Right-drag: horizontal motion changes the width, vertical the level."""
        if self.layout_ is None:
            return
        if start:
            self._wl_start = self.state.window
        self.state.set_window(drag_window(self._wl_start, dx_px, dy_px))

    def handle_key(self, key: int) -> bool:
        """Scroll keys; returns True when the key was used."""
        if self.layout_ is None:
            return False
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.state.selected_measurement is not None:
            self.state.remove_measurement(self.state.selected_measurement)
            return True
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_PageUp: PAGE_STEP,
            Qt.Key.Key_PageDown: -PAGE_STEP,
        }.get(Qt.Key(key))
        if steps is not None:
            self.scroll(steps)
            return True
        if key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            top = self.layout_.slice_from_slider(self.layout_.n_slices - 1)
            bottom = self.layout_.slice_from_slider(0)
            self.go_to_slice(top if key == Qt.Key.Key_End else bottom)
            return True
        return False

    def _on_slider(self, value: int) -> None:
        if self.layout_ is not None:
            self.go_to_slice(self.layout_.slice_from_slider(value))

    def reset_view(self) -> None:
        """Fit the whole plane in the view (undo zoom and pan)."""
        if self.layout_ is not None:
            self.viewbox.setRange(QRectF(0.0, 0.0, self.layout_.width_mm, self.layout_.height_mm), padding=0.02)

    # --- cursor readout -----------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        self._hover_pos = scene_pos
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def voxel_under(self, scene_pos: QPointF) -> tuple[int, int, int] | None:
        """The voxel under a scene position on the current slice, or None."""
        if self.layout_ is None or self._slice < 0:
            return None
        pos = self.viewbox.mapSceneToView(scene_pos)
        return self.layout_.voxel_at(float(pos.x()), float(pos.y()), self._slice)

    def mouse_left(self) -> None:
        """The mouse left the view: no voxel is under it any more."""
        self._hover_pos = None
        self._hover_timer.stop()
        self.hovered.emit(None)

    def _emit_hover(self) -> None:
        if self._hover_pos is not None:
            self.hovered.emit(self.voxel_under(self._hover_pos))
