"""File ▸ Export report: a PDF with the series, the models and one page per accepted finding."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from app.findings import Mark
from engine.detection.result import NOT_FOR_CLINICAL_USE
from tests.app.conftest import detect_and_wait, open_and_wait


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def _render(pdf, page: int, out) -> QImage:
    """Page ``page`` (1-based) of a PDF as an image, through poppler's pdftoppm at 50 dpi."""
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", str(page), "-l", str(page), "-singlefile", str(pdf), str(out)],
                   check=True, capture_output=True)
    image = QImage(f"{out}.png")
    assert not image.isNull()
    return image


def _dark_fraction(image: QImage, box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> float:
    """Fraction of the pixels in ``box`` (fractions of width and height) that are not near white."""
    gray = image.convertToFormat(QImage.Format.Format_Grayscale8)
    w, h = gray.width(), gray.height()
    pixels = np.frombuffer(gray.constBits(), dtype=np.uint8).reshape(h, gray.bytesPerLine())[:, :w]
    x0, y0, x1, y1 = box
    part = pixels[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
    return float(np.mean(part < 200))


def _check_rendered_pages(pdf, folder) -> None:
    """The summary page and a finding's page render as portrait A4 pages with text, and the finding's with images."""
    summary = _render(pdf, 1, folder / "page-1")
    assert summary.height() / summary.width() == pytest.approx(297 / 210, rel=0.02)  # A4 portrait
    assert 0.005 < _dark_fraction(summary, (0.0, 0.0, 1.0, 0.3)) < 0.5  # a header of text on white, not blank
    finding = _render(pdf, 2, folder / "page-2")
    assert finding.size() == summary.size()
    assert _dark_fraction(finding) > 2 * _dark_fraction(summary)  # the three key images fill part of the page


@pytest.fixture
def reviewed(qtbot, window, write_volume):
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    window.state.set_mark(1, Mark.ACCEPTED)
    window.state.set_mark(2, Mark.ACCEPTED)
    window.state.set_mark(3, Mark.REJECTED)
    window.state.set_note(2, "peri-fissural")
    return window


def test_report_has_one_page_per_accepted_finding(qtbot, reviewed, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "report"), ""))
    assert reviewed.actions_["export_report"].isEnabled()
    written = reviewed.export("pdf")
    assert written == tmp_path / "report.pdf"
    data = written.read_bytes()
    assert data.startswith(b"%PDF") and _pages(data) == 1 + 2  # the summary, then findings 1 and 2
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils is not installed: the page count was checked, not the text and the pages")
    _check_rendered_pages(written, tmp_path)
    text = subprocess.run(["pdftotext", "-layout", str(written), "-"], capture_output=True, text=True, check=True).stdout
    assert NOT_FOR_CLINICAL_USE in text.replace("\n", " ")
    assert reviewed.state.volume.series_uid in text and "demo-seg" in text and "threshold 0.50" in text
    assert "2 accepted, 1 rejected" in text
    assert text.count("Finding #") == 2 and "Finding #1" in text and "Finding #2" in text
    assert "peri-fissural" in text and "Long / short axis" in text and "mm³" in text
    c = reviewed.state.result.candidates[0]
    assert f"LPS x {c.center_xyz[0]:.1f}" in text and "(index 12)" in text and "p(malignant)" in text
    assert "nodules" not in text


def test_report_without_accepted_findings(qtbot, reviewed, tmp_path) -> None:
    from app.report import write_report

    for cid in (1, 2):
        reviewed.state.set_mark(cid, None)
    written = write_report(reviewed.state, tmp_path / "none.pdf")
    assert _pages(written.read_bytes()) == 1
    reviewed.state.set_result(None)
    with pytest.raises(ValueError):
        write_report(reviewed.state, tmp_path / "x.pdf")
