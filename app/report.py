"""File ▸ Export report: a PDF a reader can read and sign, made with Qt's own PDF writer.

Page 1: the series (uid, file, size and spacing), the models and their ids,
the device, the grouping settings and display thresholds, the date, what was
reviewed (accepted, rejected, not reviewed) and a table of the accepted
findings. Then one page per accepted finding: its number, location, LPS
position, slice, diameters and volume (:func:`engine.measure.lesion_measurements`),
p(nodule), p(malignant), the reader's note, and key images (axial, coronal and
sagittal crops in the current window/level, with its circle and a 10 mm scale
bar). Every page says "Research software: not for clinical use."
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
from PySide6.QtCore import QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen

from app.findings import Finding, FindingClass, Mark, marker_radius_mm
from app.overlay import crop_plane
from app.planes import Plane, plane_layout
from app.state import ViewerState
from engine.detection.result import NOT_FOR_CLINICAL_USE
from engine.files import atomic_path
from engine.measure import LesionMeasurement, lesion_measurements

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: Printer resolution of the PDF, dots per inch.
DPI = 200
#: Side of each key image on the page, mm.
KEY_IMAGE_MM = 55.0
#: Scale bar drawn on key images, mm.
SCALE_BAR_MM = 10.0


@dataclass(frozen=True)
class ReportFinding:
    """One accepted finding as the report prints it."""

    finding: Finding
    location: str
    slice_text: str
    measurement: LesionMeasurement | None


def report_details(window: MainWindow) -> dict[str, str]:
    """What the report says about the file and the models besides the result itself."""
    ct = window.state.volume
    return {
        "file": str(ct.source_path) if ct is not None and ct.source_path is not None else "(not from a file)",
        "models": window.models.choice.summary(),
        "demo models": "yes (trained on synthetic data)" if window.provider.demo else "no",
    }


def accepted_findings(state: ViewerState) -> list[ReportFinding]:
    """The accepted findings at the current thresholds (and accepted candidates not shown), most probable first."""
    ct, result = state.volume, state.result
    if ct is None or result is None:
        return []
    axial = plane_layout(ct.geometry, ct.shape, Plane.AXIAL)
    extent = state.lung_extent
    shown = {f.id: f for f in state.findings.findings}
    marks, notes = state.marks, state.notes
    accepted: list[Finding] = []
    for c in result.candidates:
        if marks.get(int(c.id)) != Mark.ACCEPTED:
            continue
        f = shown.get(int(c.id))
        if f is None:  # accepted, then hidden by a threshold: still the reader's finding
            f = Finding(c, FindingClass.NEAR_MISS, False, Mark.ACCEPTED, 0, (), "", notes.get(int(c.id), ""))
        accepted.append(f)
    accepted.sort(key=lambda f: (f.number == 0, f.number, -float(f.candidate.p_nodule)))
    out = []
    for f in accepted:
        c = f.candidate
        index = int(round(float(c.center_irc[axial.slice_axis])))
        where = extent.long_words(c.center_xyz) if extent is not None else "location unknown"
        try:
            measured: LesionMeasurement | None = lesion_measurements(result, ct, c)
        except (ValueError, IndexError):
            measured = None  # a candidate without a usable box: the equivalent diameter is printed
        out.append(ReportFinding(f, where, f"slice {index + 1} / {axial.n_slices} (index {index})", measured))
    return out


class _Page:
    """A painter on the PDF with mm coordinates and a text cursor."""

    def __init__(self, painter: QPainter, writer: QPdfWriter) -> None:
        self.painter = painter
        self.scale = writer.resolution() / 25.4
        rect = writer.pageLayout().paintRect(QPageLayout.Unit.Millimeter)
        self.width_mm, self.height_mm = rect.width(), rect.height()
        self.y = 0.0

    def px(self, mm: float) -> float:
        return mm * self.scale

    def text(self, text: str, size: float = 10.0, bold: bool = False, colour: QColor | None = None,
             x_mm: float = 0.0, width_mm: float | None = None, gap_mm: float = 1.5) -> None:
        font = QFont("Helvetica")
        font.setPointSizeF(size)
        font.setBold(bold)
        self.painter.setFont(font)
        self.painter.setPen(colour or QColor(20, 20, 20))
        width = self.px(width_mm if width_mm is not None else self.width_mm - x_mm)
        rect = QRectF(self.px(x_mm), self.px(self.y), width, self.px(self.height_mm))
        used = self.painter.boundingRect(rect, int(Qt.TextFlag.TextWordWrap), text)
        self.painter.drawText(rect, int(Qt.TextFlag.TextWordWrap), text)
        self.y += used.height() / self.scale + gap_mm

    def rows(self, pairs: list[tuple[str, str]], key_mm: float = 42.0, size: float = 9.5) -> None:
        for key, value in pairs:
            y = self.y
            self.text(key, size, bold=True, width_mm=key_mm, gap_mm=0.0)
            key_bottom = self.y
            self.y = y
            self.text(value, size, x_mm=key_mm, gap_mm=0.0)
            self.y = max(self.y, key_bottom) + 1.0

    def rule(self) -> None:
        self.painter.setPen(QPen(QColor(150, 150, 150), self.px(0.2)))
        self.painter.drawLine(QPointF(0, self.px(self.y)), QPointF(self.px(self.width_mm), self.px(self.y)))
        self.y += 2.0

    def footer(self, page: int, pages: int) -> None:
        y = self.y
        self.y = self.height_mm - 6.0
        self.text(f"{NOT_FOR_CLINICAL_USE}  ·  LungCAD  ·  page {page} of {pages}", 8.0, colour=QColor(120, 0, 0))
        self.y = y


def _measure_text(r: ReportFinding) -> list[tuple[str, str]]:
    c = r.finding.candidate
    m = r.measurement
    rows = [("Equivalent Ø", f"{float(c.diameter_mm):.1f} mm (sphere of the segmented volume)")]
    if m is not None:
        rows.append(("Long / short axis", f"{m.long_axis_mm:.1f} × {m.short_axis_mm:.1f} mm (axial, slice index {m.slice_index})"))
        rows.append(("Volume", f"{m.volume_mm3:.0f} mm³"))
        solid = f", solid part {m.solid_axis_mm:.1f} mm" if m.solid_axis_mm is not None else ""
        rows.append(("Consistency", f"{m.consistency}{solid}"))
    return rows


def _key_images(page: _Page, state: ViewerState, finding: Finding) -> None:
    """Axial, coronal and sagittal crops side by side at the cursor, with the circle and a scale bar."""
    ct = state.volume
    assert ct is not None
    c = finding.candidate
    fov = max(40.0, 3.0 * float(c.diameter_mm))
    gap = 4.0
    x = 0.0
    painter = page.painter
    for plane in Plane:
        layout = plane_layout(ct.geometry, ct.shape, plane)
        image = np.ascontiguousarray(crop_plane(ct.hu, layout, c.center_irc, fov, state.window))
        h, w = image.shape
        width_mm, height_mm = w * layout.spacing_u, h * layout.spacing_v
        scale = KEY_IMAGE_MM / max(width_mm, height_mm)  # page mm per image mm
        target = QRectF(page.px(x), page.px(page.y + 5.0), page.px(width_mm * scale), page.px(height_mm * scale))
        qimage = QImage(image.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        painter.drawImage(target, qimage)
        centre = target.center()
        radius = page.px(float(marker_radius_mm(0.5 * float(c.diameter_mm), 0.0)) * scale)
        painter.setPen(QPen(QColor(255, 200, 0), page.px(0.35)))
        painter.drawEllipse(centre, radius, radius)
        bar = page.px(SCALE_BAR_MM * scale)
        y_bar = target.bottom() - page.px(3.0)
        painter.setPen(QPen(QColor(255, 255, 255), page.px(0.6)))
        painter.drawLine(QPointF(target.left() + page.px(3.0), y_bar), QPointF(target.left() + page.px(3.0) + bar, y_bar))
        y = page.y
        page.text(f"{plane.value.capitalize()}", 8.5, bold=True, x_mm=x, width_mm=KEY_IMAGE_MM, gap_mm=0)
        page.y = y + 5.0 + height_mm * scale + 1.0
        page.text(f"bar {SCALE_BAR_MM:.0f} mm · field {fov:.0f} mm · W {state.window.width:.0f} / L {state.window.level:.0f}",
                  7.0, colour=QColor(90, 90, 90), x_mm=x, width_mm=KEY_IMAGE_MM, gap_mm=0)
        page.y = y
        x += KEY_IMAGE_MM + gap
    page.y += 5.0 + KEY_IMAGE_MM + 8.0


def write_report(state: ViewerState, path: str | Path, details: Mapping[str, str] | None = None) -> Path:
    """Write the PDF report of the open series' review.

    Args:
        state: The viewer state (needs a volume and a result).
        path: Destination (``.pdf`` is added when missing).
        details: Extra ``label → text`` rows for the series section (file, models).

    Returns:
        The path written.

    Raises:
        ValueError: there is no result to report.
        OSError: the file could not be written.
    """
    ct, result = state.volume, state.result
    if ct is None or result is None:
        raise ValueError("no detection result to report")
    path = Path(path)
    if path.suffix.lower() != ".pdf":
        path = path.with_suffix(".pdf")
    accepted = accepted_findings(state)
    marks = state.marks
    n_rejected = sum(1 for m in marks.values() if m == Mark.REJECTED)
    n_open = sum(1 for f in state.findings.findings if f.mark is None)
    pages = 1 + len(accepted)
    with atomic_path(path) as temp:
        writer = QPdfWriter(str(temp))
        writer.setResolution(DPI)
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                         QMarginsF(16, 14, 16, 14), QPageLayout.Unit.Millimeter))
        writer.setTitle(f"LungCAD report {ct.series_uid}")
        writer.setCreator("LungCAD")
        painter = QPainter()
        if not painter.begin(writer):
            raise OSError(f"could not start the PDF {path}")
        try:
            page = _Page(painter, writer)
            _summary_page(page, state, accepted, n_rejected, n_open, details or {})
            page.footer(1, pages)
            for k, r in enumerate(accepted, start=2):
                writer.newPage()
                page.y = 0.0
                _finding_page(page, state, r)
                page.footer(k, pages)
        finally:
            painter.end()
    return path


def _summary_page(page: _Page, state: ViewerState, accepted: list[ReportFinding], n_rejected: int, n_open: int,
                  details: Mapping[str, str]) -> None:
    ct, result = state.volume, state.result
    assert ct is not None and result is not None
    page.text("LungCAD — CAD review report", 17, bold=True)
    page.text(NOT_FOR_CLINICAL_USE + " The findings are computer-aided detection candidates reviewed by a reader; "
              "no value here is a diagnosis.", 9.5, colour=QColor(150, 0, 0), gap_mm=3.0)
    page.rule()
    sx, sy, sz = ct.geometry.spacing_xyz
    nz, ny, nx = ct.shape
    t = state.thresholds
    rows = [("Date", time.strftime("%Y-%m-%d %H:%M")), ("Series UID", ct.series_uid)]
    rows += [(k.capitalize(), v) for k, v in details.items()]
    rows += [
        ("Volume", f"{nx} × {ny} × {nz} voxels, {sx:.2f} × {sy:.2f} × {sz:.2f} mm"),
        ("Model ids", ", ".join(f"{role} {mid}" for role, mid in result.model_ids.items())),
        ("Device", f"{result.device} ({result.precision})"),
        ("Grouping", result.grouping.describe()),
        ("Thresholds", f"p(nodule) ≥ {t.nodule:.2f}, near-miss band {t.near_miss_band:.2f}, p(malignant) ≥ {t.malignancy:.2f}"),
        ("Review", f"{len(accepted)} accepted, {n_rejected} rejected, {n_open} shown and not reviewed "
                   f"(of {len(result.candidates)} candidates in all)"),
    ]
    page.rows(rows)
    page.y += 3.0
    page.rule()
    page.text("Accepted findings", 12.5, bold=True)
    if not accepted:
        page.text("No finding was accepted.", 10)
        return
    for r in accepted:
        c = r.finding.candidate
        x, y, z = c.center_xyz
        m = r.measurement
        size = f"{m.long_axis_mm:.1f} × {m.short_axis_mm:.1f} mm, {m.volume_mm3:.0f} mm³" if m is not None else f"Ø {float(c.diameter_mm):.1f} mm"
        page.text(f"#{r.finding.number or '–'}  {r.location}; {size}; p(nodule) {float(c.p_nodule):.2f}, "
                  f"p(malignant) {float(c.p_malignant):.2f}; LPS {x:.1f}, {y:.1f}, {z:.1f} mm; {r.slice_text}", 9.5)


def _finding_page(page: _Page, state: ViewerState, r: ReportFinding) -> None:
    f, c = r.finding, r.finding.candidate
    x, y, z = c.center_xyz
    page.text(f"Finding #{f.number or '–'} — {r.location}", 15, bold=True)
    page.rule()
    rows = [
        ("Position", f"LPS x {x:.1f}, y {y:.1f}, z {z:.1f} mm"),
        ("Slice", r.slice_text),
        *_measure_text(r),
        ("p(nodule)", f"{float(c.p_nodule):.2f}"),
        ("p(malignant)", f"{float(c.p_malignant):.2f}"),
        ("Verdict", "accepted by the reader"),
    ]
    if f.fragments:
        rows.append(("Pieces", f"{len(f.fragments)} smaller segmented piece(s) inside it, counted as this lesion"))
    if f.note:
        rows.append(("Note", f.note))
    page.rows(rows)
    page.y += 4.0
    page.text("Key images", 11.5, bold=True)
    _key_images(page, state, f)
