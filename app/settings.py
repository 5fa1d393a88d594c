"""What the viewer remembers between runs, through ``QSettings``.

Stored: recent files, the window's geometry and dock layout, the splitter
layout of the three views, the last window/level preset, the display
thresholds, the checkpoints chosen for Detect ("last models"), and the
Training window's dataset folder, geometry and whether it was open.

The store is the platform's usual place (registry, plist, ini), or the ini file
named by ``$LUNGCAD_SETTINGS`` when set, which tests use to stay away from the
user's real settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from engine.paths import APP_NAME

#: Environment variable naming an ini file to use instead of the user's settings.
SETTINGS_ENV = "LUNGCAD_SETTINGS"
#: How many recent files File ▸ Open Recent lists.
MAX_RECENT = 10


class AppSettings:
    """Typed access to the viewer's persistent settings.

    Args:
        path: An ini file to use; default ``$LUNGCAD_SETTINGS``, else the
            platform's per-user settings for ``LungCAD``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        path = path if path is not None else os.environ.get(SETTINGS_ENV)
        if path:
            self._q = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self._q = QSettings(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, APP_NAME, APP_NAME)

    @property
    def location(self) -> str:
        """Where the settings are stored (a file path or registry key)."""
        return self._q.fileName()

    def clear(self) -> None:
        """Forget everything (``python main.py --reset-settings``)."""
        self._q.clear()
        self._q.sync()

    def sync(self) -> None:
        """Write pending changes to disk."""
        self._q.sync()

    # --- recent files ---------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Recently opened files and folders, most recent first, those that still exist."""
        value = self._q.value("recent/files", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if p and Path(p).exists()][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> None:
        """Put ``path`` first in the recent list."""
        path = str(Path(path).resolve())
        value = self._q.value("recent/files", [])
        items = [value] if isinstance(value, str) else list(value or [])
        items = [path] + [p for p in items if p != path]
        self._q.setValue("recent/files", items[:MAX_RECENT])

    def clear_recent_files(self) -> None:
        """Empty the recent list."""
        self._q.remove("recent/files")

    # --- layout -----------------------------------------------------------------
    def layout(self, name: str) -> QByteArray | None:
        """A saved ``saveGeometry()``/``saveState()`` blob by name, or None."""
        value = self._q.value(f"layout/{name}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_layout(self, name: str, blob: QByteArray) -> None:
        """Save a geometry/state blob under ``name``."""
        self._q.setValue(f"layout/{name}", blob)

    # --- display ----------------------------------------------------------------
    def last_preset(self) -> str | None:
        """Name of the last window/level preset chosen, or None."""
        value = self._q.value("display/preset")
        return str(value) if value else None

    def set_last_preset(self, name: str) -> None:
        """Remember the window/level preset."""
        self._q.setValue("display/preset", name)

    def thresholds(self) -> dict[str, float]:
        """Saved display thresholds (``nodule``, ``near_miss_band``, ``malignancy``), possibly empty."""
        return self._json("display/thresholds")

    def set_thresholds(self, values: dict[str, float]) -> None:
        """Remember the display thresholds."""
        self._q.setValue("display/thresholds", json.dumps({k: float(v) for k, v in values.items()}))

    def finding_fov_mm(self) -> float:
        """Field of view (mm, 20–300) the views zoom to when going to a finding; 60 by default."""
        try:
            value = float(self._q.value("display/finding_fov_mm", 60.0))
        except (TypeError, ValueError):
            return 60.0  # a hand-edited, broken entry
        return min(300.0, max(20.0, value)) if value == value else 60.0

    def set_finding_fov_mm(self, mm: float) -> None:
        """Remember the go-to-finding field of view."""
        self._q.setValue("display/finding_fov_mm", float(mm))

    # --- models -----------------------------------------------------------------
    def last_models(self) -> dict[str, str]:
        """The checkpoints chosen for Detect (Models menu), by role.

        Keys ``segmentation``, ``classifier``, ``malignancy``; values a file
        path or ``"demo"`` (the shipped demo weights). See ``app.model_choice``.
        """
        return {str(k): str(v) for k, v in self._json("models/last").items()}

    def set_last_models(self, models: dict[str, str]) -> None:
        """Remember which checkpoints Detect uses."""
        self._q.setValue("models/last", json.dumps({str(k): str(v) for k, v in models.items()}))

    # --- detect on a server -----------------------------------------------------------
    def detect_target(self) -> dict:
        """Where Detect runs (``app.server_settings.DetectTarget.to_settings``), possibly empty."""
        return self._json("detect/target")

    def set_detect_target(self, values: dict) -> None:
        """Remember where Detect runs (this computer, or a server's URL and token file)."""
        self._q.setValue("detect/target", json.dumps(values))

    # --- training -------------------------------------------------------------------
    def training_dataset(self) -> str | None:
        """The dataset folder of the last training run started from the panel, or None."""
        value = self._q.value("training/dataset")
        return str(value) if value else None

    def set_training_dataset(self, folder: str | Path) -> None:
        """Remember the Training window's dataset folder, geometry and whether it was open."""
        self._q.setValue("training/dataset", str(folder))

    def training_window_open(self) -> bool:
        """Whether the Training window was open when the viewer last closed."""
        return str(self._q.value("training/window_open", "false")).lower() in ("true", "1")

    def set_training_window_open(self, shown: bool) -> None:
        """Remember whether the Training window is open."""
        self._q.setValue("training/window_open", "true" if shown else "false")

    def _json(self, key: str) -> dict:
        text = self._q.value(key)
        if not text:
            return {}
        try:
            value = json.loads(str(text))
        except json.JSONDecodeError:
            return {}  # a hand-edited, broken entry: fall back to defaults
        return value if isinstance(value, dict) else {}
