"""Exports: LUNA16 CSV and JSON with the reader's review, and a PNG snapshot."""

from __future__ import annotations

import csv
import json

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from app.findings import Mark
from app.planes import Plane
from tests.app.conftest import detect_and_wait, open_and_wait


@pytest.fixture
def detected(qtbot, window, write_volume):
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    return window


def _save_to(monkeypatch, path):
    asked = []

    def fake(parent, title, start, filters):
        asked.append((title, start, filters))
        return str(path), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake)
    return asked


def test_export_luna_csv_leaves_out_rejected_findings(qtbot, detected, tmp_path, monkeypatch, errors) -> None:
    detected.state.set_mark(2, Mark.REJECTED)
    asked = _save_to(monkeypatch, tmp_path / "out.csv")
    written = detected.export("csv")
    assert written == tmp_path / "out.csv" and errors == []
    assert asked[0][1].endswith("ct_findings.csv")
    rows = list(csv.reader(written.open()))
    assert rows[0] == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    by_p = sorted((c for c in detected.state.result.candidates if c.id != 2), key=lambda c: -c.p_nodule)
    assert [float(r[4]) for r in rows[1:]] == pytest.approx([c.p_nodule for c in by_p])
    assert [float(v) for v in rows[1][1:4]] == pytest.approx(by_p[0].center_xyz, abs=1e-3)
    assert {r[0] for r in rows[1:]} == {detected.state.volume.series_uid}


def test_export_json_with_review_and_thresholds(qtbot, detected, tmp_path, monkeypatch) -> None:
    detected.state.set_mark(1, Mark.ACCEPTED)
    detected.state.set_thresholds(nodule=0.6)
    _save_to(monkeypatch, tmp_path / "out.json")
    data = json.loads(detected.export("json").read_text())
    assert data["coordinate_system"] == "LPS" and data["nodule_threshold"] == pytest.approx(0.6)
    assert "not for clinical use" in data["note"].lower() and "synthetic" in data["note"]
    by_id = {c["id"]: c for c in data["candidates"]}
    assert by_id[1]["review"] == "accepted" and by_id[2]["review"] is None
    assert [by_id[k]["shown_as"] for k in (1, 2, 3, 4)] == ["nodule", "nodule", "near miss", None]
    assert by_id[1]["center_xyz_mm"] == pytest.approx(detected.state.result.candidates[0].center_xyz, abs=1e-3)
    assert data["n_accepted"] == 1 and data["near_miss_band"] == pytest.approx(0.2)


def test_png_snapshot_of_the_views(qtbot, detected, tmp_path, monkeypatch) -> None:
    _save_to(monkeypatch, tmp_path / "shot")  # no suffix: .png is added
    written = detected.export("png")
    assert written == tmp_path / "shot.png"
    image = QImage(str(written))
    assert not image.isNull()
    canvases = [detected.views[p].canvas for p in Plane]
    ratio = detected.view_splitter.devicePixelRatioF()
    axial, coronal = canvases[0], canvases[1]
    x0 = axial.mapTo(detected, QPoint(0, 0)).x()
    x1 = coronal.mapTo(detected, QPoint(0, 0)).x() + coronal.width()
    assert image.width() == round((x1 - x0) * ratio)
    assert image.height() == round(axial.height() * ratio)  # the views only: no slider bar below them
    assert image.height() < detected.view_splitter.height() * ratio


def test_export_cancelled_or_without_result(qtbot, window, write_volume, monkeypatch) -> None:
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    assert window.export("png") is None  # nothing open
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    assert window.export("csv") is None  # no result yet
    assert not window.actions_["export_csv"].isEnabled() and window.actions_["snapshot"].isEnabled()
    assert window.export("png") is None  # dialog cancelled


def test_export_error_is_reported(qtbot, detected, tmp_path, monkeypatch, errors) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _save_to(monkeypatch, blocker / "out.json")  # a file where a folder should be
    assert detected.export("json") is None
    assert errors and errors[0][0] == "Export failed" and "out.json" in errors[0][1]
