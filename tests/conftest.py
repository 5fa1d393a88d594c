"""Test-wide fixtures: isolated user data folder, CT factories, the book folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.io.volume import CtVolume
from engine.geometry import Geometry

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = REPO_ROOT.parent / "shared" / "book"


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never let a test touch the real per-user data folder."""
    data = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("LUNGCAD_DATA_DIR", str(data))
    return data


@pytest.fixture
def book_dir() -> Path:
    """The book's real artifacts (../shared/book); skips when absent."""
    if not BOOK_DIR.is_dir():
        pytest.skip(f"the book's artifacts are not at {BOOK_DIR} (only on the developers' machines)")
    return BOOK_DIR


def make_ct(
    shape: tuple[int, int, int] = (16, 24, 20),
    spacing_xyz: tuple[float, float, float] = (0.7, 0.8, 1.5),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    origin_xyz: tuple[float, float, float] = (-120.0, -90.0, -300.0),
    seed: int = 0,
    series_uid: str = "1.2.826.0.1.3680043.2.1125.1",
) -> CtVolume:
    """A random CT volume: air background with a soft-tissue block, values in HU."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000, dtype=np.int16)
    i, r, c = (max(1, s // 4) for s in shape)
    hu[i:-i, r:-r, c:-c] = rng.integers(-100, 200, size=hu[i:-i, r:-r, c:-c].shape, dtype=np.int16)
    return CtVolume(hu=hu, geometry=Geometry(origin_xyz, spacing_xyz, direction), series_uid=series_uid)


@pytest.fixture(name="make_ct")
def make_ct_fixture():
    """Factory fixture: ``make_ct(shape, spacing_xyz, direction, origin_xyz, seed)``."""
    return make_ct
