"""The viewer's Detect backend: ``$LUNGCAD_BACKEND`` chooses torch, onnx or auto (Qt-free part)."""

from __future__ import annotations

import pytest

from app.model_choice import BACKEND_VARIABLE, ModelChoice, detect_backend, detector_factory


@pytest.mark.parametrize(("value", "expected"), [(None, "torch"), ("onnx", "onnx"), (" AUTO ", "auto"), ("tensorrt", "torch")])
def test_detect_backend_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(BACKEND_VARIABLE, value)
    assert detect_backend() == expected


def test_the_factory_builds_a_detector_with_the_backend(monkeypatch):
    from engine.detection import Detector

    built = {}

    def fake_from_checkpoints(*paths, device, config):
        built.update(paths=paths, device=device, backend=config.backend)
        return "detector"

    monkeypatch.setattr(Detector, "from_checkpoints", staticmethod(fake_from_checkpoints))
    monkeypatch.setenv(BACKEND_VARIABLE, "onnx")
    assert detector_factory(ModelChoice())() == "detector"
    assert built == {"paths": (None, None, None), "device": "auto", "backend": "onnx"}
    detector_factory(ModelChoice(), backend="torch")()
    assert built["backend"] == "torch"
