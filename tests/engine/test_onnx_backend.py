"""The detector's ONNX Runtime backend: per-stage choice, the export cache and its equivalence check."""

from __future__ import annotations

import pytest
import torch

from engine.detection import DetectorConfig
from engine.detection import onnx_backend
from tests.engine.fake_chest import tiny_classifier

pytest.importorskip("onnxruntime")


def test_stage_backends():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert onnx_backend.stage_backends("torch", cpu) == {"segmentation": "torch", "classification": "torch"}
    assert onnx_backend.stage_backends("onnx", cuda) == {"segmentation": "onnx", "classification": "onnx"}
    assert onnx_backend.stage_backends("auto", cpu) == onnx_backend.AUTO_CPU
    assert onnx_backend.stage_backends("auto", cuda) == {"segmentation": "torch", "classification": "torch"}


def test_config_refuses_an_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        DetectorConfig(backend="tensorrt")


def test_cache_is_keyed_by_the_weights(tmp_path):
    first = onnx_backend.cache_path(tiny_classifier(1), "classifier", tmp_path)
    assert first == onnx_backend.cache_path(tiny_classifier(1), "classifier", tmp_path)
    assert first != onnx_backend.cache_path(tiny_classifier(2), "classifier", tmp_path)
    assert first.parent == tmp_path and first.name.startswith("classifier-")
    assert onnx_backend.onnx_cache_dir().name == "onnx"


def test_export_is_checked_and_cached(tmp_path):
    model = tiny_classifier(3)
    lines: list[str] = []
    path = onnx_backend.cached_onnx(model, "classifier", folder=tmp_path, log=lines.append)
    assert path.is_file() and len(lines) == 1 and "max |Δp|" in lines[0]
    stamp = path.stat().st_mtime_ns
    assert onnx_backend.cached_onnx(model, "classifier", folder=tmp_path, log=lines.append) == path
    assert path.stat().st_mtime_ns == stamp and len(lines) == 1, "the second call reuses the file"


def test_a_failed_check_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    from engine.deploy import export
    from engine.deploy.errors import EquivalenceError

    real = export.check_equivalence

    def off_by_a_lot(*args, **kwargs):
        outcome = real(*args, **kwargs)
        return type(outcome)(outcome.fmt, 0.5, outcome.samples, outcome.batches, outcome.tolerance)

    monkeypatch.setattr(export, "check_equivalence", off_by_a_lot)
    with pytest.raises(EquivalenceError, match="differs from torch by 5.00e-01"):
        onnx_backend.cached_onnx(tiny_classifier(4), "classifier", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []
