"""Window/level presets and mapping (no Qt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from app.windowing import PRESETS_PATH, WindowLevel, drag_window, load_presets, window_to_uint8
from engine.errors import ResourceFileError


def test_shipped_presets_are_exactly_the_four() -> None:
    presets = load_presets(PRESETS_PATH)
    table = {p.name: (p.window.width, p.window.level) for p in presets}
    assert table == {
        "Lung": (1500, -600),
        "Mediastinum": (350, 40),
        "Bone": (1800, 400),
        "Brain": (80, 40),
    }
    assert len({p.key for p in presets}) == 4 and all(p.key for p in presets)


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"presets": []}), json.dumps({"presets": [{"name": "x", "width": "wide", "level": 0}]}),
     json.dumps({"presets": [{"name": "x", "width": -5, "level": 0}]})],
)
def test_bad_preset_files_are_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "presets.json"
    path.write_text(content)
    with pytest.raises(ResourceFileError, match="presets.json"):
        load_presets(path)


def test_missing_preset_file(tmp_path: Path) -> None:
    with pytest.raises(ResourceFileError, match="missing"):
        load_presets(tmp_path / "none.json")


def test_levels_and_drag_directions() -> None:
    w = WindowLevel(400, 40)
    assert w.levels == (-160, 240)
    assert drag_window(w, 100, 0, hu_per_px=2).width == 600  # right = wider
    assert drag_window(w, 0, 50, hu_per_px=2).level == 140  # down = higher level
    assert drag_window(w, -10_000, 0).width >= 1  # never zero or negative
    assert "W 400" in w.label() and "L 40" in w.label()


def test_window_to_uint8() -> None:
    hu = np.array([-1000, -160, 40, 240, 3000], dtype=np.int16)
    assert_array_equal(window_to_uint8(hu, WindowLevel(400, 40)), [0, 0, 128, 255, 255])
