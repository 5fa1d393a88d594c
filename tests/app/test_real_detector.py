"""The viewer with the engine's real ``Detector`` (tiny untrained models): detect and re-group end to end."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.planes import Plane
from tests.app.conftest import detect_and_wait

torch = pytest.importorskip("torch")


@pytest.fixture
def real_window(make_window):
    from engine.detection import Detector
    from tests.engine.fake_chest import DenseTissueSegmentation, tiny_classifier

    built: list[int] = []

    def factory():
        built.append(threading.get_ident())  # the detector (and torch) is built in the worker thread
        return Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")

    window = make_window()
    window.provider.reset(factory, demo=False)
    window.built_in = built
    return window


def test_detect_and_regroup_with_the_real_detector(qtbot, real_window, errors) -> None:
    from tests.engine.fake_chest import NODULES, lung_block

    ct = lung_block()
    real_window.state.set_volume(ct)
    stages: list[str] = []
    real_window.detector.progress.connect(lambda f, s: stages.append(s))
    detect_and_wait(qtbot, real_window, timeout=60000)
    assert errors == []
    result = real_window.state.result
    assert result is not None and len(result.candidates) == len(NODULES)
    assert real_window.built_in and real_window.built_in[0] != threading.get_ident()
    assert any("segmentation" in s for s in stages)
    # every candidate is drawn on its centre slice in the axial view (with all thresholds open)
    real_window.state.set_thresholds(nodule=0.0, near_miss_band=0.0)
    axial = real_window.views[Plane.AXIAL]
    for c in result.candidates:
        axial.go_to_slice(c.slice_index)
        xy = np.column_stack([axial.markers.data["x"], axial.markers.data["y"]])
        assert np.any(np.all(np.isclose(xy, axial.layout_.to_screen(c.center_irc)), axis=1))
    assert real_window.findings_panel.proxy.rowCount() == len(NODULES)
    assert "not for clinical use" in real_window.detection_panel.disclaimer.text()
    # a higher segmentation threshold re-groups the stored probabilities
    with qtbot.waitSignal(real_window.detector.done, timeout=60000):
        real_window.detection_panel.seg_slider.slider.setValue(90)
    assert real_window.state.seg_threshold == pytest.approx(0.9)
    assert real_window.state.result.seg_probability is result.seg_probability
