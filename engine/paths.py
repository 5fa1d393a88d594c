"""Per-user folders: the generated demo series, caches and training runs.

The base folder is the platform's user data dir (``platformdirs``), or
``$LUNGCAD_DATA_DIR`` when set (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "LungCAD"
REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = REPO_ROOT / "resources"
MODELS_DIR = RESOURCES_DIR / "models"


def user_data_dir() -> Path:
    """The per-user data folder (created if missing)."""
    override = os.environ.get("LUNGCAD_DATA_DIR")
    if override:
        path = Path(override)
    else:
        from platformdirs import user_data_path

        path = user_data_path(APP_NAME, appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_dir() -> Path:
    """Where the built-in demo series lives."""
    return user_data_dir() / "demo"


def cache_dir() -> Path:
    """Where crop caches and per-series results are kept."""
    return user_data_dir() / "cache"


def runs_dir() -> Path:
    """Default parent folder of training runs."""
    return user_data_dir() / "runs"
