"""The demo detector's findings on a fixed small phantom equal those recorded before the speed work (issue 16).

The fixture (``tests/engine/data/detection_fixture.json``) was written with
the code as it was before channels-last layouts, batch-size changes, the ONNX
backend and the CPU streams, on a stored phantom (generated phantoms differ
in the last bit between processors, see ``make_detection_fixture.py``); every
candidate must come back with the same voxel count, its centre within the
stored rounding and both probabilities within 1e-4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.detection import Detector, DetectorConfig
from engine.detection.weights import default_weight_paths
from tests.engine.data.make_detection_fixture import CENTER_DECIMALS, FIXTURE, candidate_rows, fixture_phantom

pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in default_weight_paths().values()), reason="the demo weights are not shipped here"
)


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def phantom():
    return fixture_phantom()


def assert_same_candidates(rows: list[dict], expected: list[dict]) -> None:
    """Same candidates in the same order: voxel counts equal, centres within rounding, probabilities within 1e-4."""
    assert len(rows) == len(expected)
    assert [r["voxel_count"] for r in rows] == [e["voxel_count"] for e in expected]
    got = np.array([r["center_irc"] for r in rows])
    want = np.array([e["center_irc"] for e in expected])
    np.testing.assert_allclose(got, want, rtol=0, atol=1.01 * 10.0**-CENTER_DECIMALS)
    for key in ("p_nodule", "p_malignant"):
        np.testing.assert_allclose([r[key] for r in rows], [e[key] for e in expected], rtol=0, atol=1.01e-4, err_msg=key)


@pytest.mark.parametrize("streams", [None, 1, 2])
def test_torch_backend_keeps_the_recorded_findings(recorded, phantom, streams):
    """Default (one CPU stream per thread), one batch at a time, and two streams whatever the thread count."""
    config = DetectorConfig(precision="float32", cpu_streams=streams)
    detector = Detector.from_checkpoints(device="cpu", config=config)
    assert dict(detector.model_ids) == recorded["model_ids"]
    assert_same_candidates(candidate_rows(detector.detect(phantom)), recorded["candidates"])


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One export cache for the module's tests (each test has its own user-data folder)."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.parametrize("backend", ["onnx", "auto"])
def test_onnx_backend_gives_the_same_findings(recorded, phantom, backend, onnx_cache, monkeypatch):
    """Same candidates with ONNX Runtime (the small phantom stands in for the demo series, which takes minutes)."""
    pytest.importorskip("onnxruntime")
    from engine.detection import onnx_backend

    monkeypatch.setattr(onnx_backend, "onnx_cache_dir", lambda: onnx_cache)
    detector = Detector.from_checkpoints(device="cpu", config=DetectorConfig(precision="float32", backend=backend))
    result = detector.detect(phantom)
    expected = {"onnx": {"segmentation": "onnx", "classification": "onnx"}, "auto": {"segmentation": "onnx", "classification": "torch"}}
    assert result.extra["backends"] == expected[backend]
    assert_same_candidates(candidate_rows(result), recorded["candidates"])
    if backend == "onnx":
        assert any("exported to ONNX" in line for line in result.messages)
        again = detector.detect(phantom)  # the sessions are kept: no second export
        assert not any("exported to ONNX" in line for line in again.messages)
        assert candidate_rows(again) == candidate_rows(result)
