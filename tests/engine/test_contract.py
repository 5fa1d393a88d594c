"""The detection contract (results, settings, choices, CLI options) imports and works without torch."""

from __future__ import annotations

import dataclasses
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
    assert GroupingSettings().non_defaults() == {}
    assert GroupingSettings(erosion="in-plane").non_defaults() == {"erosion": "in-plane"}
    assert GroupingSettings(0.25, "none").non_defaults() == {"seg_threshold": 0.25, "erosion": "none"}
    assert GroupingSettings(0.25, "none").as_dict() == {"seg_threshold": 0.25, "erosion": "none"}
    assert GroupingSettings().describe() == "threshold 0.50, erosion 3d"
    assert GroupingSettings(0.333, "in-plane").describe() == "threshold 0.33, erosion in-plane"
    for setting in dataclasses.fields(GroupingSettings):
        assert setting.metadata["help"] and setting.metadata["label"]
    assert dataclasses.fields(GroupingSettings)[1].metadata["choices"] == EROSIONS


def test_detector_config_needs_grouping_settings() -> None:
    with pytest.raises(TypeError, match="GroupingSettings"):
        DetectorConfig(grouping=0.5)  # type: ignore[arg-type]
