"""RemoteDetector against a real loopback server: the same result as a local detection, errors, cancel."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from engine.deploy.errors import (
    RemoteDetectorError,
    ServerAuthError,
    ServerBusyError,
    ServerTimeoutError,
    ServerUnreachableError,
)
from engine.detection import Detector
from engine.detection.settings import GroupingSettings
from engine.errors import CancelledError
from engine.serve.client import RemoteDetector
from engine.serve.result_codec import ResultFormatError, decode_result, encode_result
from tests.engine.deploy.loopback import TOKEN, free_port, loopback_server


@pytest.fixture(scope="module")
def phantom_ct():
    from engine.phantom import generate_series

    ct, _ = generate_series(5, preset="small", n_nodules=2)
    return ct


def assert_same_result(got, expected, *, uid: str) -> None:
    """Same candidates (probabilities within 1e-6), grouping, models and probability volume."""
    assert got.series_uid == uid
    assert got.shape == expected.shape and got.geometry == expected.geometry
    assert got.grouping == expected.grouping and dict(got.model_ids) == dict(expected.model_ids)
    assert np.array_equal(got.seg_probability, expected.seg_probability) and got.seg_probability.dtype == np.uint8
    assert len(got.candidates) == len(expected.candidates)
    for a, b in zip(got.candidates, expected.candidates):
        assert (a.id, a.voxel_count, a.bbox_irc) == (b.id, b.voxel_count, b.bbox_irc)
        np.testing.assert_allclose(a.center_irc, b.center_irc, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.center_xyz, b.center_xyz, rtol=0, atol=1e-9)
        assert a.diameter_mm == pytest.approx(b.diameter_mm, abs=1e-9)
        assert abs(a.p_nodule - b.p_nodule) <= 1e-6 and abs(a.p_malignant - b.p_malignant) <= 1e-6


def test_detect_and_regroup_equal_local_detection(phantom_ct) -> None:
    local = Detector.default(device="cpu")
    expected = local.detect(phantom_ct)
    assert expected.candidates, "the phantom should give candidates"
    with loopback_server(lambda: Detector.default(device="cpu")) as app:
        remote = RemoteDetector(app.state.url, TOKEN, timeout=120).connect()
        assert remote.model_ids == dict(expected.model_ids) and remote.demo
        stages: list[tuple[float, str]] = []
        got = remote.detect(phantom_ct, progress=lambda f, s="": stages.append((f, s)))
        assert_same_result(got, expected, uid=phantom_ct.series_uid)
        assert "server" in got.device and app.state.url in got.device
        texts = [s for _, s in stages]
        assert any(s.startswith("uploading") for s in texts) and any("detecting on server" in s for s in texts)
        fractions = [f for f, _ in stages]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        # the book's components with a lower threshold and the in-plane erosion (peaks, the default, does not
        # erode) make new candidates: those are classified on the server, the method sent with the rest
        grouping = GroupingSettings(seg_threshold=0.4, erosion="in-plane", method="components")
        regrouped_local = local.regroup(expected, phantom_ct, grouping)
        regrouped = remote.regroup(got, phantom_ct, grouping)
        assert regrouped.grouping == grouping and regrouped.seg_probability is got.seg_probability
        assert_same_result(regrouped, regrouped_local, uid=phantom_ct.series_uid)
        assert len(regrouped.candidates) != len(got.candidates)
        assert re.search(r"; [1-9][0-9]* new candidate", regrouped.messages[0])


def test_whole_result_archive_round_trip_and_bad_include(phantom_ct) -> None:
    detector = Detector.default(device="cpu")
    result = detector.detect(phantom_ct)
    decoded, document = decode_result(encode_result(result, {"n_candidates": len(result.candidates)}))
    assert_same_result(decoded, result, uid=result.series_uid)
    assert decoded.candidates == result.candidates  # floats come back bit for bit
    assert dict(decoded.timings) == dict(result.timings) and decoded.messages == result.messages
    assert document["findings"] == {"n_candidates": len(result.candidates)}
    with loopback_server(lambda: detector) as app:
        request = urllib.request.Request(app.state.url + "/v1/detect?include=everything", data=b"NRRD0004\n",
                                         headers={"Authorization": f"Bearer {TOKEN}"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 400 and b"unknown include everything" in caught.value.read()


def test_archives_that_are_not_results_are_refused() -> None:
    with pytest.raises(ResultFormatError):
        decode_result(b"not an archive")
    pickled = io.BytesIO()
    np.savez(pickled, **{"result.json": np.array([{"a": 1}], dtype=object), "seg_probability": np.zeros((2, 2, 2), np.uint8)})
    with pytest.raises(ResultFormatError):
        decode_result(pickled.getvalue())  # an object array needs pickle: never loaded


def test_errors_name_the_server_and_never_the_token(phantom_ct) -> None:
    refused_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachableError, match="connection refused") as caught:
        RemoteDetector(refused_url, TOKEN, timeout=5).connect()
    assert refused_url in str(caught.value) and TOKEN not in str(caught.value)
    with pytest.raises(RemoteDetectorError, match="http://host:port"):
        RemoteDetector("ftp://example.org", TOKEN)
    release = threading.Event()

    def slow_load():
        release.wait(30)
        return Detector.default(device="cpu")

    # /ready is 503 while loading: loopback_server waits for it, so start one by hand here
    import uvicorn

    from engine.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(slow_load, TOKEN), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        with pytest.raises(ServerBusyError, match="503") as busy:
            RemoteDetector(url, TOKEN, timeout=5).detect(phantom_ct)
        assert url in str(busy.value)
        release.set()
        for _ in range(600):
            if urllib.request.urlopen(url + "/health", timeout=1).status == 200:
                try:
                    RemoteDetector(url, TOKEN, timeout=5).connect()
                    break
                except ServerBusyError:
                    time.sleep(0.05)
        with pytest.raises(ServerAuthError, match="401") as wrong:
            RemoteDetector(url, "w" * 32, timeout=5).connect()
        assert "w" * 32 not in str(wrong.value) and url in str(wrong.value)
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(ServerTimeoutError, match="did not answer within 0.5 s") as caught:
            RemoteDetector(url, TOKEN, timeout=0.5).connect()
        assert time.monotonic() - began < 10 and url in str(caught.value)


def test_cancel_during_upload_and_while_the_server_detects(phantom_ct) -> None:
    entered, release = threading.Event(), threading.Event()
    detector = Detector.default(device="cpu")
    real_detect = detector.detect

    def held_detect(ct, *args, **kwargs):
        entered.set()
        release.wait(30)
        return real_detect(ct, *args, **kwargs)

    detector.detect = held_detect
    with loopback_server(lambda: detector) as app:
        remote = RemoteDetector(app.state.url, TOKEN, timeout=60)
        stages: list[str] = []
        with pytest.raises(CancelledError):
            remote.detect(phantom_ct, progress=lambda f, s="": stages.append(s), cancelled=lambda: any(s.startswith("uploading") for s in stages))
        assert not entered.is_set()
        began = time.monotonic()
        seen: list[str] = []
        with pytest.raises(CancelledError):
            remote.detect(phantom_ct, progress=lambda f, s="": seen.append(s),
                          cancelled=lambda: entered.is_set() and any("detecting on server" in s for s in seen))
        assert time.monotonic() - began < 20
        release.set()
