"""A 3-plane close-up of the selected finding: axial, coronal and sagittal crops with its circle."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.findings import FindingClass, marker_radius_mm
from app.overlay import crop_plane
from app.planes import Plane, plane_layout
from app.state import ViewerState
from app.theme import MALIGNANT_RGB, NODULE_RGB, PLANE_RGB

#: Smallest field of view of a crop, in mm; larger findings get 2.5 × their diameter.
MIN_FOV_MM = 30.0
#: Side of each crop on screen, in pixels.
TILE_PX = 128


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


class CropPreviewPanel(QWidget):
    """Three crops centred on the selected finding, in the current window/level."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.title = QLabel("Select a finding to see it up close.")
        self.title.setWordWrap(True)
        self.tiles: dict[Plane, QLabel] = {}
        grid = QGridLayout()
        for column, plane in enumerate(Plane):
            name = QLabel(plane.value.capitalize())
            name.setStyleSheet(f"color: rgb{PLANE_RGB[plane.value]}; font-weight: bold;")
            name.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            tile = QLabel()
            tile.setFixedSize(TILE_PX, TILE_PX)
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tile.setStyleSheet("background: black;")
            tile.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            grid.addWidget(name, 0, column)
            grid.addWidget(tile, 1, column)
            self.tiles[plane] = tile
        box = QVBoxLayout(self)
        box.addWidget(self.title)
        box.addLayout(grid)
        box.addStretch(1)
        self._unsubscribe = [
            state.subscribe(event, self.refresh) for event in ("volume", "selection", "window", "findings", "cad")
        ]
        self.destroyed.connect(lambda *_: [off() for off in self._unsubscribe])
        self.refresh()

    def refresh(self) -> None:
        """Redraw the crops for the current selection (or clear them)."""
        ct, selected = self.state.volume, self.state.selected_id
        finding = None if selected is None else self.state.findings.by_id(selected)
        if ct is None or finding is None or self.state.hide_cad:
            hidden = self.state.hide_cad and finding is not None
            self.title.setText("CAD marks hidden (H shows them)." if hidden else "Select a finding to see it up close.")
            for tile in self.tiles.values():
                tile.clear()
            return
        c = finding.candidate
        kind = "near miss" if finding.klass == FindingClass.NEAR_MISS else "nodule"
        self.title.setText(
            f"#{finding.id} {kind}: p(nodule) {float(c.p_nodule):.2f}, p(malignant) {float(c.p_malignant):.2f}, "
            f"Ø {float(c.diameter_mm):.1f} mm"
        )
        fov = crop_fov_mm(float(c.diameter_mm))
        rgb = MALIGNANT_RGB if finding.malignant else NODULE_RGB
        for plane, tile in self.tiles.items():
            layout = plane_layout(ct.geometry, ct.shape, plane)
            image = crop_plane(ct.hu, layout, c.center_irc, fov, self.state.window)
            width_mm = image.shape[1] * layout.spacing_u
            height_mm = image.shape[0] * layout.spacing_v
            pixmap = gray_pixmap(image, width_mm, height_mm, TILE_PX)
            px_per_mm = pixmap.width() / width_mm
            radius = float(marker_radius_mm(0.5 * float(c.diameter_mm), 0.0)) * px_per_mm
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            pen = QPen(QColor(*rgb))
            pen.setWidthF(1.5)
            if finding.klass == FindingClass.NEAR_MISS:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawEllipse(QPointF(pixmap.width() / 2, pixmap.height() / 2), radius, radius)
            painter.end()
            tile.setPixmap(pixmap)
