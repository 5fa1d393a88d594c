"""Fixtures for the viewer's tests: isolated settings, volumes on disk, a window with a fake detector."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from engine.io.volume import CtVolume

#: A small CT with two nodule-like balls, spaced like a real scan (anisotropic).
SMALL_SHAPE = (24, 48, 40)
SMALL_SPACING_XYZ = (0.8, 0.75, 2.5)
#: Candidate specs for the fake detector: (irc, p_nodule, p_malignant, diameter_mm).
SPECS = [
    ((12, 24, 20), 0.95, 0.85, 10.0),
    ((6, 12, 10), 0.70, 0.20, 6.0),
    ((18, 36, 30), 0.40, 0.60, 5.0),
    ((4, 40, 8), 0.05, 0.10, 4.0),
]


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never let a test read or write the user's real viewer settings."""
    path = tmp_path_factory.mktemp("settings") / "lungcad.ini"
    monkeypatch.setenv("LUNGCAD_SETTINGS", str(path))
    return path


def small_hu(shape: tuple[int, int, int] = SMALL_SHAPE, seed: int = 0) -> np.ndarray:
    """Air, a body block of soft tissue with lung-like holes, and distinct values everywhere."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000, dtype=np.int16)
    i, r, c = (max(1, s // 6) for s in shape)
    hu[:, r:-r, c:-c] = rng.integers(-50, 80, size=hu[:, r:-r, c:-c].shape)
    hu[:, r + 3 : -r - 3, c + 3 : -c - 3] = rng.integers(-900, -800, size=hu[:, r + 3 : -r - 3, c + 3 : -c - 3].shape)
    return hu


@pytest.fixture
def write_volume(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``write_volume(name, hu=None, spacing_xyz=..., origin_xyz=..., direction=...)`` → path.

    The file type follows ``name``'s ending (``.mhd``, ``.nii.gz``, ``.nrrd``, ...).
    """

    def write(
        name: str = "ct.mhd",
        hu: np.ndarray | None = None,
        spacing_xyz: tuple[float, float, float] = SMALL_SPACING_XYZ,
        origin_xyz: tuple[float, float, float] = (-15.0, -18.0, -30.0),
        direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
        folder: Path | None = None,
    ) -> Path:
        image = sitk.GetImageFromArray(small_hu() if hu is None else hu)
        image.SetSpacing(spacing_xyz)
        image.SetOrigin(origin_xyz)
        image.SetDirection(direction)
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))
        return path

    return write


@pytest.fixture
def small_ct() -> CtVolume:
    """The small CT in memory (no file)."""
    from engine.geometry import Geometry

    return CtVolume(hu=small_hu(), geometry=Geometry((-15.0, -18.0, -30.0), SMALL_SPACING_XYZ), series_uid="1.2.3.small")


@pytest.fixture
def fake_detector():
    """A fake detector returning :data:`SPECS`."""
    from tests.app.fakes import FakeDetector

    return FakeDetector(SPECS)


@pytest.fixture
def make_window(qtbot, fake_detector):
    """Factory: a shown ``MainWindow`` using ``fake_detector`` (or ``detector=...``).

    ``resize=False`` keeps the size restored from the settings.
    """
    from app.main_window import MainWindow

    def make(detector=None, resize: bool = True, **kwargs):
        detector = fake_detector if detector is None else detector
        window = MainWindow(detector_factory=lambda: detector, demo_models=True, **kwargs)
        qtbot.addWidget(window)
        if resize:
            window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


@pytest.fixture
def window(make_window):
    """A shown main window with the fake detector and no volume."""
    return make_window()


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Error dialogs shown, as (title, text), instead of blocking on them."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a, **k: shown.append((title, text)))
    return shown


def open_and_wait(qtbot, window, path, series_uid=None, timeout: int = 15000) -> None:
    """Open a path and wait until the load finished."""
    with qtbot.waitSignal(window.loader.idle, timeout=timeout):
        assert window.open_path(path, series_uid)


def detect_and_wait(qtbot, window, timeout: int = 15000) -> None:
    """Run Detect and wait until the run ended."""
    with qtbot.waitSignal(window.detector.busy_changed, timeout=timeout, check_params_cb=lambda busy: not busy):
        window.run_detect()


def install_fake_demo(monkeypatch: pytest.MonkeyPatch, path: Path | None) -> list[float]:
    """Replace ``engine.demo`` by a module whose ``demo_series_path`` returns ``path``.

    With ``path=None`` the module is missing (import fails). Returns the progress
    fractions it reported.
    """
    reported: list[float] = []
    if path is None:
        monkeypatch.setitem(sys.modules, "engine.demo", None)
        return reported

    def demo_series_path(progress=None):
        for f in (0.0, 0.5, 1.0):
            reported.append(f)
            if progress is not None:
                progress(f, "generating the synthetic chest CT")
        return path

    module = types.ModuleType("engine.demo")
    module.demo_series_path = demo_series_path
    monkeypatch.setitem(sys.modules, "engine.demo", module)
    return reported
