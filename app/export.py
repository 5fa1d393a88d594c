"""Exporting what the reader sees: findings as LUNA16 CSV or JSON, the PDF report, a PNG snapshot of the views.

The file formats are the engine's (:mod:`engine.export`); the viewer adds the
reader's review to them:

* the CSV lists every candidate the reader did not reject (at most 100, most
  probable first, as LUNA16 allows), whatever the display thresholds, so it can
  be scored with FROC;
* the JSON holds every candidate with the engine's fields plus ``review``
  (``accepted``/``rejected``/``null``) and ``shown_as`` (``nodule``,
  ``near miss`` or ``null`` at the viewer's thresholds), and the thresholds;
* the PDF report (:mod:`app.report`) lists the accepted findings;
* the PNG snapshot holds the three image views only (no sliders or controls),
  as they are laid out in the window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QFileDialog, QWidget

from app.findings import FindingClass
from app.state import ViewerState
from engine.files import atomic_open, atomic_path

#: LUNA16 accepts at most this many marks per scan.
MAX_LUNA_MARKS = 100
DEMO_NOTE = "Demo model trained on synthetic data — not for clinical use."
#: The file dialog's filter per export kind.
EXPORT_FILTERS = {"csv": "LUNA16 CSV (*.csv)", "json": "JSON (*.json)", "png": "PNG image (*.png)", "pdf": "PDF report (*.pdf)"}

if TYPE_CHECKING:
    from app.main_window import MainWindow


def suggested_name(state: ViewerState, kind: str) -> str:
    """A file name for an export of the open series (``<stem>_findings.csv`` ...)."""
    ct = state.volume
    stem = "lungcad"
    if ct is not None:
        if ct.source_path is not None:
            stem = ct.source_path.name.split(".")[0] if ct.source_path.is_file() else ct.source_path.name
        else:
            stem = ct.series_uid
    return {"csv": f"{stem}_findings.csv", "json": f"{stem}_findings.json", "png": f"{stem}_snapshot.png",
            "pdf": f"{stem}_report.pdf"}[kind]


def findings_payload(state: ViewerState, demo: bool = False) -> dict[str, Any]:
    """The JSON export of the current result, with the reader's review.

    Args:
        state: The viewer state (needs a result).
        demo: Whether the result came from the demo models (changes the note).

    Returns:
        A JSON-ready dict (the engine's ``findings_to_json`` plus review fields).

    Raises:
        ValueError: there is no result to export.
    """
    from engine.export import findings_to_json

    result = state.result
    if result is None:
        raise ValueError("no detection result to export")
    t = state.thresholds
    options: dict[str, Any] = {"nodule_threshold": t.nodule, "malignancy_threshold": t.malignancy}
    if state.volume is not None and state.volume.source_path is not None:
        options["source"] = state.volume.source_path
    if demo:
        options["note"] = DEMO_NOTE
    payload = findings_to_json(result, **options)
    marks = state.marks
    shown = {f.id: f.klass for f in state.findings.findings}
    for entry in payload["candidates"]:
        mark = marks.get(int(entry["id"]))
        klass = shown.get(int(entry["id"]))
        entry["review"] = None if mark is None else mark.value
        entry["shown_as"] = {FindingClass.NODULE: "nodule", FindingClass.NEAR_MISS: "near miss"}.get(klass)
    payload["near_miss_band"] = t.near_miss_band
    payload["n_accepted"] = sum(1 for m in marks.values() if m.value == "accepted")
    payload["n_rejected"] = sum(1 for m in marks.values() if m.value == "rejected")
    return payload


def export_findings(state: ViewerState, kind: str, path: str | Path, demo: bool = False) -> Path:
    """Write the findings as ``"csv"`` (LUNA16 submission) or ``"json"``.

    Args:
        state: The viewer state (needs a result).
        kind: ``"csv"`` or ``"json"``.
        path: Destination file.
        demo: Whether the result came from the demo models.

    Returns:
        The path written.

    Raises:
        ValueError: no result, or an unknown kind.
        OSError: the file cannot be written.
    """
    from engine.export import write_luna_csv

    result = state.result
    if result is None:
        raise ValueError("no detection result to export")
    if kind == "csv":
        rejected = {k for k, m in state.marks.items() if m.value == "rejected"}
        kept = [c for c in sorted(result.candidates, key=lambda c: -c.p_nodule) if c.id not in rejected]
        rows = [(result.series_uid, *c.center_xyz, c.p_nodule) for c in kept[:MAX_LUNA_MARKS]]
        return write_luna_csv(rows, path)
    if kind == "json":
        return _write_json(findings_payload(state, demo), Path(path))
    raise ValueError(f"unknown export kind {kind!r}")


def _write_json(payload: dict[str, Any], path: Path) -> Path:
    """Write JSON atomically (:mod:`engine.files`)."""
    with atomic_open(path) as stream:
        json.dump(payload, stream, indent=1)
    return path


def snapshot_views(widgets: QWidget | Sequence[QWidget], path: str | Path) -> Path:
    """Save image views as one PNG, laid out as in the window, with nothing else in it.

    Args:
        widgets: One widget, or the image canvases of the views (placed where they
            are relative to their common parent; the gaps between them are black).
        path: Destination (``.png`` is added when missing).

    Raises:
        OSError: the image could not be written.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    image = _compose(widgets)
    with atomic_path(path) as temp:
        if not image.save(str(temp), "PNG"):
            raise OSError(f"could not write the PNG image {path}")
    return path


def _compose(widgets: QWidget | Sequence[QWidget]) -> QPixmap:
    if isinstance(widgets, QWidget):
        return widgets.grab()
    widgets = list(widgets)
    window = widgets[0].window()
    origins = [w.mapTo(window, QPoint(0, 0)) for w in widgets]
    left = min(o.x() for o in origins)
    top = min(o.y() for o in origins)
    right = max(o.x() + w.width() for o, w in zip(origins, widgets))
    bottom = max(o.y() + w.height() for o, w in zip(origins, widgets))
    ratio = widgets[0].devicePixelRatioF()
    canvas = QPixmap(max(1, round((right - left) * ratio)), max(1, round((bottom - top) * ratio)))
    canvas.setDevicePixelRatio(ratio)
    canvas.fill(Qt.GlobalColor.black)
    painter = QPainter(canvas)
    for origin, widget in zip(origins, widgets):
        painter.drawPixmap(origin.x() - left, origin.y() - top, widget.grab())
    painter.end()
    return canvas


#: How many times a failed export offers the file dialog again before giving up.
EXPORT_OFFERS = 3


def export_from_window(window: MainWindow, kind: str) -> Path | None:
    """Ask where, then export ``kind`` (``csv``, ``json``, ``pdf``, ``png``) from the window; errors go to a dialog.

    Returns:
        The file written, or None (nothing to export, cancelled, or failed).
    """
    from app.planes import Plane

    state = window.state
    if state.volume is None or (kind != "png" and state.result is None):
        return None
    from engine.errors import EngineError
    from engine.files import check_output_path
    from engine.io.ct import input_files

    start = str(Path(window._last_folder()) / suggested_name(state, kind))
    inputs = input_files(state.volume.source_path) if state.volume.source_path is not None else ()
    for _attempt in range(EXPORT_OFFERS):  # a failed write keeps the findings and offers another file
        path, _ = QFileDialog.getSaveFileName(window, f"Export {kind.upper()}", start, EXPORT_FILTERS[kind])
        if not path:
            return None
        try:
            check_output_path(path, inputs)  # never over the open CT, a folder or a device
            if kind == "png":
                written = snapshot_views([window.views[p].canvas for p in Plane], path)
            elif kind == "pdf":
                from app.report import report_details, write_report

                written = write_report(state, path, report_details(window))
            else:
                written = export_findings(state, kind, path, demo=window.provider.demo)
            break
        except (OSError, ValueError, EngineError) as exc:
            window.report_error("Export failed", f"{path}: {exc}\n\nNothing is lost: choose another file, or cancel.")
            start = path
    else:
        return None
    window.statusBar().showMessage(f"Saved {written}", 5000)
    return written
