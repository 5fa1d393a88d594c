"""The detection contract (results, settings, choices, CLI options) imports and works without torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.detection.settings import EROSIONS, DetectorConfig, GroupingSettings

REPO = Path(__file__).resolve().parents[2]

_BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'PySide6', 'pyqtgraph'):
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, _Block())
import argparse
import engine.detection
from engine.detection import Candidate, DetectionResult, DetectorConfig, GroupingSettings, EROSIONS
from engine.detection import checkpoint_paths, default_weight_paths, threshold_level
import engine.choices, engine.commands.options
from engine.commands import analyze, bench, evaluate
for command in (analyze, evaluate, bench):
    command.add_arguments(argparse.ArgumentParser())
parser = argparse.ArgumentParser()
analyze.add_arguments(parser)
args = parser.parse_args(['scan.mhd', '--erosion', 'in-plane', '--seg-threshold', '0.3', '--device', 'cuda:1'])
assert engine.commands.options.grouping_from_args(args) == GroupingSettings(0.3, 'in-plane')
assert DetectorConfig().grouping == GroupingSettings()
try:
    engine.detection.Detector
except ImportError as exc:
    assert 'blocked for this test: torch' in str(exc), exc
else:
    raise AssertionError('Detector imported although torch is blocked')
assert not any(name.split('.')[0] == 'torch' for name in sys.modules), sorted(sys.modules)
print('ok')
"""


def test_contract_imports_without_torch() -> None:
    done = subprocess.run([sys.executable, "-c", _BLOCK_TORCH], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_detector_loads_lazily_from_the_package() -> None:
    import engine.detection
    from engine.detection.detector import Detector

    assert engine.detection.Detector is Detector and "Detector" in dir(engine.detection)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        engine.detection.Nothing  # noqa: B018


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seg_threshold": 1.5}, r"must lie in \[0, 1\]"),
        ({"seg_threshold": -0.1}, r"must lie in \[0, 1\]"),
        ({"seg_threshold": float("nan")}, r"must lie in \[0, 1\]"),
        ({"seg_threshold": "0.5"}, "must be a number"),
        ({"seg_threshold": True}, "must be a number"),
        ({"erosion": "2d"}, "unknown erosion '2d'; use one of 3d, in-plane, none"),
    ],
)
def test_grouping_settings_refuse_bad_values(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        GroupingSettings(**changes)


def test_grouping_settings_are_frozen_and_compare_by_value() -> None:
    settings = GroupingSettings(seg_threshold=1, erosion="none")
    assert settings.seg_threshold == 1.0 and isinstance(settings.seg_threshold, float)
    assert settings == GroupingSettings(1.0, "none") and hash(settings) == hash(GroupingSettings(1.0, "none"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.erosion = "3d"  # type: ignore[misc]
    assert dataclasses.replace(settings, erosion="3d") == GroupingSettings(1.0)
    assert GroupingSettings(np.float32(0.25)).seg_threshold == 0.25  # numpy scalars are numbers too


def test_grouping_settings_fingerprint_fields_and_words() -> None:
    # the default, peaks: nothing in the fingerprint; its export and its words name it and show the fields it uses
    default = GroupingSettings()
    assert default.method == "peaks" and DetectorConfig().grouping.method == "peaks"
    assert default.non_defaults() == {}
    assert GroupingSettings(erosion="in-plane").non_defaults() == {"erosion": "in-plane"}
    assert GroupingSettings(0.25, "none").non_defaults() == {"seg_threshold": 0.25, "erosion": "none"}
    peaks_fields = {"merge_mm": 5.0, "smooth_mm": 2.0, "min_diameter_mm": 2.0}
    assert default.as_dict() == {"seg_threshold": 0.5, "method": "peaks", **peaks_fields}  # no erosion: peaks has none
    assert GroupingSettings(0.25, "none").as_dict() == {
        "seg_threshold": 0.25, "erosion": "none", "method": "peaks", **peaks_fields,  # shown: not at its default
    }
    assert list(default.as_dict()) == ["seg_threshold", "method", "merge_mm", "smooth_mm", "min_diameter_mm"]
    assert default.describe() == "threshold 0.50, method peaks, merge mm 5.00, smoothing mm 2.00, min diameter mm 2.00"
    assert GroupingSettings(0.333, "in-plane").describe() == (
        "threshold 0.33, erosion in-plane, method peaks, merge mm 5.00, smoothing mm 2.00, min diameter mm 2.00"
    )
    # components, asked for by name: named in all three, the peaks-only fields left out while at their defaults
    book = GroupingSettings(0.25, "none", method="components")
    assert book.non_defaults() == {"seg_threshold": 0.25, "erosion": "none", "method": "components"}
    assert book.as_dict() == {"seg_threshold": 0.25, "erosion": "none", "method": "components"}
    assert GroupingSettings(method="components").as_dict() == {"seg_threshold": 0.5, "erosion": "3d", "method": "components"}
    assert GroupingSettings(method="components").describe() == "threshold 0.50, erosion 3d, method components"
    assert GroupingSettings(0.333, "in-plane", method="components").describe() == (
        "threshold 0.33, erosion in-plane, method components"
    )
    assert GroupingSettings(method="components", merge_mm=7).as_dict() == {
        "seg_threshold": 0.5, "erosion": "3d", "method": "components", "merge_mm": 7.0,
    }
    for settings in (default, book, GroupingSettings(method="components", merge_mm=7)):
        assert settings.as_dict()["method"] == settings.method  # every record names its method
        assert f"method {settings.method}" in settings.describe()
    for setting in dataclasses.fields(GroupingSettings):
        assert setting.metadata["help"] and setting.metadata["label"]
    assert dataclasses.fields(GroupingSettings)[1].metadata["choices"] == EROSIONS


#: Settings of both methods, at and away from their defaults (a field the method ignores included).
SAVED_SETTINGS = [
    GroupingSettings(),
    GroupingSettings(method="peaks"),
    GroupingSettings(method="components"),
    GroupingSettings(0.25, "none"),
    GroupingSettings(0.25, "none", method="components"),
    GroupingSettings(0.4, "in-plane", "peaks", merge_mm=8.0, smooth_mm=0.0, min_diameter_mm=3.5),
    GroupingSettings(0.6, "in-plane", "components", merge_mm=8.0, smooth_mm=2.5, min_diameter_mm=0.0),
    GroupingSettings(method="components", merge_mm=7),
]


@pytest.mark.parametrize("settings", SAVED_SETTINGS, ids=lambda s: s.describe())
def test_grouping_settings_come_back_from_their_dict(settings) -> None:
    saved = settings.as_dict()
    assert GroupingSettings.from_dict(saved) == settings
    # through JSON too (how results, exports and reviews keep them), and from_dict leaves its argument alone
    assert GroupingSettings.from_dict(json.loads(json.dumps(saved))) == settings
    assert saved == settings.as_dict()
    # what the dict leaves out is at its default
    assert GroupingSettings(**saved) == settings


def test_a_dict_without_a_method_is_the_components_grouping() -> None:
    """Records written while ``components`` was the default named the method only when it was ``peaks``."""
    old = GroupingSettings.from_dict({"seg_threshold": 0.5, "erosion": "3d"})
    assert old == GroupingSettings(method="components") and old.method == "components"
    assert old != GroupingSettings()  # not the default, peaks, that a missing key would otherwise give
    assert GroupingSettings.from_dict({"seg_threshold": 0.3, "erosion": "in-plane"}) == GroupingSettings(
        0.3, "in-plane", method="components"
    )
    assert GroupingSettings.from_dict({"seg_threshold": 0.5, "erosion": "3d", "merge_mm": 7.0}) == GroupingSettings(
        method="components", merge_mm=7.0
    )
    # a record that names peaks (written in either era) stays peaks
    old_peaks = {"seg_threshold": 0.5, "erosion": "3d", "method": "peaks", "merge_mm": 5.0, "smooth_mm": 1.0,
                 "min_diameter_mm": 2.0}
    assert GroupingSettings.from_dict(old_peaks) == GroupingSettings(method="peaks", smooth_mm=1.0)  # its own smoothing
    # a record of the short while peaks was the default without its name: its fields, at their defaults, say peaks
    unnamed_peaks = {"seg_threshold": 0.5, "erosion": "3d", "merge_mm": 5.0, "smooth_mm": 1.0, "min_diameter_mm": 2.0}
    assert GroupingSettings.from_dict(unnamed_peaks) == GroupingSettings(method="peaks", smooth_mm=1.0)
    assert GroupingSettings.from_dict({**unnamed_peaks, "merge_mm": 7.0}) == GroupingSettings(
        method="peaks", merge_mm=7.0, smooth_mm=1.0)
    # bad records are refused as the constructor refuses them
    with pytest.raises(ValueError, match="unknown grouping method"):
        GroupingSettings.from_dict({"seg_threshold": 0.5, "method": "watershed"})
    with pytest.raises(TypeError):
        GroupingSettings.from_dict({"seg_threshold": 0.5, "dilation": 2})


def test_detector_config_needs_grouping_settings() -> None:
    with pytest.raises(TypeError, match="GroupingSettings"):
        DetectorConfig(grouping=0.5)  # type: ignore[arg-type]
