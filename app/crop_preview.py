"""A 3-plane close-up of the selected finding: axial, coronal and sagittal crops with its circle.

Each crop shows the finding in the current window/level with its circle (the
marker style of the views: solid for nodules, dashed violet for near misses)
and a scale bar, the axial one also the long (cyan) and short (orange) axis; the tiles grow and shrink with the panel so none is clipped.
Under them: the finding's size (long × short axis on its axial centre slice,
volume, consistency and solid component, from :func:`engine.measure.lesion_measurements`)
and the reader's ruler measurements (:class:`app.measurement_list.MeasurementListWidget`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from app.findings import Finding, FindingClass, marker_radius_mm
from app.measurement_list import MeasurementListWidget
from app.overlay import crop_plane
from app.planes import Plane, plane_layout
from app.state import ViewerState
from app.theme import MALIGNANT_RGB, NODULE_RGB, PLANE_RGB
from app.view_overlays import NEAR_MISS_RGB, label_font, nice_scale_length, paint_scale_bar
from engine.measure import LesionMeasurement, lesion_measurements

#: Smallest field of view of a crop, in mm; larger findings get 2.5 × their diameter.
MIN_FOV_MM = 30.0
#: Colours of the long and short axis drawn on the axial crop.
AXIS_RGB = ((120, 230, 255), (255, 150, 60))
#: Side of each crop on screen, in pixels: default, and the range it adapts to the panel's width in.
TILE_PX = 128
TILE_RANGE_PX = (96, 220)


def crop_fov_mm(diameter_mm: float) -> float:
    """Field of view of the crops around a finding of this diameter."""
    return max(MIN_FOV_MM, 2.5 * float(diameter_mm))


def gray_pixmap(image: np.ndarray, width_mm: float, height_mm: float, side_px: int) -> QPixmap:
    """A grey ``uint8`` image as a pixmap fitting ``side_px``, with its mm aspect ratio."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape
    qimage = QImage(image.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    scale = side_px / max(width_mm, height_mm)
    size_w, size_h = max(1, int(round(width_mm * scale))), max(1, int(round(height_mm * scale)))
    return QPixmap.fromImage(qimage).scaled(
        size_w, size_h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


def tile_side_px(panel_width: int, columns: int = 3, spacing: int = 6) -> int:
    """Side of each crop tile that fits ``columns`` tiles in ``panel_width`` pixels (clipped to the range)."""
    side = (int(panel_width) - (columns + 1) * spacing) // columns
    return int(np.clip(side, *TILE_RANGE_PX))


def measurement_lines(m: LesionMeasurement) -> str:
    """The close-up's size text for a finding."""
    text = f"Long × short axis {m.long_axis_mm:.1f} × {m.short_axis_mm:.1f} mm (axial slice {m.slice_index + 1})"
    text += f"\nVolume {m.volume_mm3:,.0f} mm³ · {m.consistency}"
    if m.solid_axis_mm is not None:
        text += f" · solid component {m.solid_axis_mm:.1f} mm"
    if not m.from_mask:
        text += " (no segmentation at this threshold: size from the candidate)"
    return text


class CropPreviewPanel(QWidget):
    """Three crops centred on the selected finding, in the current window/level, its size and the rulers."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tile_px = TILE_PX
        self._watched: QWidget | None = None
        self.title = QLabel("Select a finding to see it up close.")
        self.title.setWordWrap(True)
        self.size_text = QLabel("")
        self.size_text.setWordWrap(True)
        self.size_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tiles: dict[Plane, QLabel] = {}
        self.measurement: LesionMeasurement | None = None
        self._measured: tuple | None = None
        grid = QGridLayout()
        grid.setSpacing(6)
        for column, plane in enumerate(Plane):
            name = QLabel(plane.value.capitalize())
            name.setStyleSheet(f"color: rgb{PLANE_RGB[plane.value]}; font-weight: bold;")
            name.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            tile = QLabel()
            tile.setFixedSize(self.tile_px, self.tile_px)
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tile.setStyleSheet("background: black;")
            tile.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            grid.addWidget(name, 0, column)
            grid.addWidget(tile, 1, column)
            self.tiles[plane] = tile
        self.measurements = MeasurementListWidget(state)
        box = QVBoxLayout(self)
        box.addWidget(self.title)
        box.addWidget(self.size_text)  # the numbers first: they must show even in a short dock
        box.addLayout(grid)
        box.addWidget(self.measurements)
        box.addStretch(1)
        self.setMinimumWidth(3 * TILE_RANGE_PX[0] + 4 * 6)
        self._unsubscribe = [
            state.subscribe(event, self.refresh) for event in ("volume", "selection", "window", "findings", "cad")
        ]
        self.destroyed.connect(lambda *_: [off() for off in self._unsubscribe])
        self.refresh()

    def _scroll_area(self) -> QScrollArea | None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        return parent

    def showEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        area = self._scroll_area()
        if area is not None and area.viewport() is not self._watched:
            self._watched = area.viewport()
            self._watched.installEventFilter(self)  # the dock's height changes the viewport, not always the panel
        self._fit_tiles()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 — Qt override
        if watched is self._watched and event.type() == QEvent.Type.Resize:
            self._fit_tiles()
        return False

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self._fit_tiles()

    def _fit_tiles(self) -> None:
        """Size the tiles to the panel's width and the dock's visible height (so none is cut off)."""
        side = tile_side_px(self.width() - 12)
        visible = None if self._watched is None else self._watched.height()
        if visible is not None:
            others = self.layout().sizeHint().height() - self.tile_px
            side = int(np.clip(min(side, visible - others), *TILE_RANGE_PX))
        if side != self.tile_px:
            self.tile_px = side
            for tile in self.tiles.values():
                tile.setFixedSize(side, side)
            self.refresh()

    def _finding(self) -> Finding | None:
        selected = self.state.selected_id
        return None if selected is None else self.state.findings.by_id(selected)

    def refresh(self) -> None:
        """Redraw the crops and the size for the current selection (or clear them)."""
        ct, finding = self.state.volume, self._finding()
        if ct is None or finding is None or self.state.hide_cad:
            hidden = self.state.hide_cad and finding is not None
            self.title.setText("CAD marks hidden (H shows them)." if hidden else "Select a finding to see it up close.")
            self.size_text.setText("")
            self.measurement = None
            for tile in self.tiles.values():
                tile.clear()
            return
        c = finding.candidate
        near = finding.klass == FindingClass.NEAR_MISS
        kind = "near miss" if near else "candidate"
        number = getattr(finding, "number", 0) or finding.id
        self.title.setText(
            f"#{number} {kind}: p(nodule) {float(c.p_nodule):.2f}, p(malignant) {float(c.p_malignant):.2f}, "
            f"Ø {float(c.diameter_mm):.1f} mm"
        )
        self.measurement = self._measure(finding)
        self.size_text.setText("" if self.measurement is None else measurement_lines(self.measurement))
        fov = crop_fov_mm(float(c.diameter_mm))
        rgb = NEAR_MISS_RGB if near else (MALIGNANT_RGB if finding.malignant else NODULE_RGB)
        for plane, tile in self.tiles.items():
            tile.setPixmap(self._tile(plane, finding, fov, rgb, near))

    def _measure(self, finding: Finding) -> LesionMeasurement | None:
        """The finding's size, computed once per result and candidate."""
        result, ct = self.state.result, self.state.volume
        if result is None or ct is None:
            return None
        key = (id(result), finding.id)
        if self._measured is None or self._measured[0] != key:
            self._measured = (key, lesion_measurements(result, ct, finding.candidate))
        return self._measured[1]

    def _tile(self, plane: Plane, finding: Finding, fov: float, rgb: tuple[int, int, int], near: bool) -> QPixmap:
        ct, c = self.state.volume, finding.candidate
        layout = plane_layout(ct.geometry, ct.shape, plane)
        image = crop_plane(ct.hu, layout, c.center_irc, fov, self.state.window)
        width_mm = image.shape[1] * layout.spacing_u
        height_mm = image.shape[0] * layout.spacing_v
        pixmap = gray_pixmap(image, width_mm, height_mm, self.tile_px)
        px_per_mm = pixmap.width() / width_mm
        radius = float(marker_radius_mm(0.5 * float(c.diameter_mm), 0.0)) * px_per_mm
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(QColor(*rgb))
        pen.setWidthF(2.0)
        if near:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawEllipse(QPointF(pixmap.width() / 2, pixmap.height() / 2), radius, radius)
        if plane == Plane.AXIAL:
            self._draw_axes(painter, layout, c.center_irc, pixmap, px_per_mm)
        length = nice_scale_length(1.0 / px_per_mm, target_px=0.22 * pixmap.width())
        small = label_font(7.0, bold=False)
        paint_scale_bar(painter, QRectF(pixmap.rect()), length * px_per_mm, f"{length:g} mm", small)
        painter.end()
        return pixmap

    def _draw_axes(self, painter: QPainter, layout, center_irc, pixmap: QPixmap, px_per_mm: float) -> None:
        """The long and short axis the size was measured along, on the axial crop (when it shows that slice)."""
        m = self.measurement
        shown = int(np.clip(np.floor(float(center_irc[0]) + 0.5), 0, layout.n_slices - 1))
        if m is None or m.long_axis_rc is None or m.short_axis_rc is None or m.slice_index != shown:
            return
        centre = np.floor(np.asarray(center_irc, dtype=np.float64) + 0.5)  # the crop's middle voxel
        middle = layout.to_screen(centre)
        half = np.array([pixmap.width() / 2, pixmap.height() / 2])

        def at(rc: tuple[float, float]) -> QPointF:
            x, y = half + (layout.to_screen(np.array([centre[0], rc[0], rc[1]])) - middle) * px_per_mm
            return QPointF(float(x), float(y))

        for ends, rgb in ((m.long_axis_rc, AXIS_RGB[0]), (m.short_axis_rc, AXIS_RGB[1])):
            pen = QPen(QColor(*rgb))
            pen.setWidthF(1.5)
            painter.setPen(pen)
            painter.drawLine(at(ends[0]), at(ends[1]))
