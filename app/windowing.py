"""Window/level: presets, the right-drag rule, and mapping HU to grey values.

Pure functions, no Qt. A window is ``(width, level)`` in HU: grey goes from
black at ``level - width/2`` to white at ``level + width/2``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ResourceFileError
from engine.paths import RESOURCES_DIR

#: The preset file shipped with the application.
PRESETS_PATH = RESOURCES_DIR / "presets.json"
#: Narrowest and widest window the viewer allows, in HU.
MIN_WIDTH = 1.0
MAX_WIDTH = 8000.0
#: Lowest and highest level, in HU.
MIN_LEVEL = -2000.0
MAX_LEVEL = 4000.0


@dataclass(frozen=True)
class WindowLevel:
    """A display window in HU.

    Args:
        width: Window width in HU (> 0).
        level: Window centre in HU.
    """

    width: float
    level: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", float(np.clip(self.width, MIN_WIDTH, MAX_WIDTH)))
        object.__setattr__(self, "level", float(np.clip(self.level, MIN_LEVEL, MAX_LEVEL)))

    @property
    def levels(self) -> tuple[float, float]:
        """``(black, white)`` HU: the values shown as black and as white."""
        return self.level - self.width / 2.0, self.level + self.width / 2.0

    def label(self) -> str:
        """Short text for the view overlay, e.g. ``W 1500  L -600``."""
        return f"W {self.width:.0f}  L {self.level:.0f}"


@dataclass(frozen=True)
class Preset:
    """A named window with its keyboard shortcut.

    Args:
        name: Shown in the menu (``Lung``, ``Mediastinum``, ...).
        window: The window it sets.
        key: Keyboard shortcut text (``"1"``), empty for none.
    """

    name: str
    window: WindowLevel
    key: str = ""


def load_presets(path: str | Path = PRESETS_PATH) -> tuple[Preset, ...]:
    """Read the window/level presets.

    Args:
        path: A JSON file ``{"presets": [{"name", "width", "level", "key"}, ...]}``.

    Returns:
        The presets in file order.

    Raises:
        ResourceFileError: the file is missing, not JSON, or an entry lacks a field
            or has a non-positive width.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResourceFileError("window/level preset file is missing", path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResourceFileError(f"cannot be read as JSON ({exc})", path) from None
    entries = data.get("presets") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ResourceFileError('needs a non-empty "presets" list', path)
    presets = []
    for n, entry in enumerate(entries):
        try:
            name = str(entry["name"])
            width = float(entry["width"])
            level = float(entry["level"])
        except (KeyError, TypeError, ValueError):
            raise ResourceFileError(f"preset {n + 1} needs a name and numeric width and level", path) from None
        if width <= 0:
            raise ResourceFileError(f"preset {name!r} has width {width}; it must be positive", path)
        presets.append(Preset(name=name, window=WindowLevel(width, level), key=str(entry.get("key", ""))))
    return tuple(presets)


def drag_window(
    start: WindowLevel, dx_px: float, dy_px: float, hu_per_px: float | None = None
) -> WindowLevel:
    """The window after a right-drag of ``(dx, dy)`` screen pixels from ``start``.

    Horizontal motion changes the width (right = wider), vertical motion the
    level (down = higher level, the image gets darker), as in most PACS.

    Args:
        start: Window when the drag began.
        dx_px: Horizontal mouse motion since the drag began, in pixels.
        dy_px: Vertical motion since the drag began, in pixels (down positive).
        hu_per_px: Sensitivity; default scales with the starting width so narrow
            windows can be fine-tuned and wide ones changed quickly.

    Returns:
        The new window (clamped to the allowed range).
    """
    if hu_per_px is None:
        hu_per_px = max(1.0, start.width / 250.0)
    return WindowLevel(start.width + dx_px * hu_per_px, start.level + dy_px * hu_per_px)


def window_to_uint8(hu: np.ndarray, window: WindowLevel) -> np.ndarray:
    """Map HU to 8-bit grey through a window (black below, white above).

    Args:
        hu: Array of HU values, any shape and numeric dtype.
        window: The window.

    Returns:
        ``uint8`` array of the same shape.
    """
    black, white = window.levels
    scaled = (np.asarray(hu, dtype=np.float32) - np.float32(black)) * np.float32(255.0 / (white - black))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return np.rint(scaled).astype(np.uint8)
