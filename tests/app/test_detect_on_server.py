"""Detect on a server from the viewer: the setting, a real loopback server, findings, cancel, the dialog."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from PySide6.QtCore import Qt  # noqa: E402

from app.server_settings import DetectTarget, DetectTargetDialog  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from tests.engine.deploy.loopback import TOKEN, loopback_server  # noqa: E402


def tiny_detector():
    from engine.detection import Detector
    from tests.engine.fake_chest import DenseTissueSegmentation, tiny_classifier

    return Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")


@pytest.fixture
def server():
    with loopback_server(tiny_detector) as app:
        yield app


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def server_window(qtbot, server, token_file):
    """A window started with "Detect on: server" remembered in its settings."""
    from app.main_window import MainWindow

    settings = AppSettings()
    settings.set_detect_target(DetectTarget(on_server=True, url=server.state.url, token_file=str(token_file)).to_settings())
    settings.sync()
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1300, 850)
    window.show()
    qtbot.waitExposed(window)
    return window


def click_detect_and_wait(qtbot, window, timeout: int = 60000) -> None:
    with qtbot.waitSignal(window.detector.busy_changed, timeout=timeout, check_params_cb=lambda busy: not busy):
        qtbot.mouseClick(window.detection_panel.detect_button, Qt.MouseButton.LeftButton)


def test_detect_on_the_server_fills_the_findings(qtbot, server_window, server, errors) -> None:
    from tests.engine.fake_chest import NODULES, lung_block

    window = server_window
    assert window.detect_target.target.on_server and server.state.url in window.detect_target.action.text()
    window.models.use_demo()  # a Models menu change keeps Detect on the server
    ct = lung_block()
    window.state.set_volume(ct)
    stages: list[str] = []
    window.detector.progress.connect(lambda f, s: stages.append(s))
    click_detect_and_wait(qtbot, window)
    assert errors == []
    result = window.state.result
    assert result is not None and len(result.candidates) == len(NODULES)
    assert server.state.url in result.device and result.series_uid == ct.series_uid
    assert any("detecting on server" in s for s in stages)
    expected = tiny_detector().detect(ct)
    assert [c.bbox_irc for c in result.candidates] == [c.bbox_irc for c in expected.candidates]
    assert max(abs(a.p_nodule - b.p_nodule) for a, b in zip(result.candidates, expected.candidates)) <= 1e-6
    window.state.set_thresholds(nodule=0.0, near_miss_band=0.0)
    assert window.findings_panel.proxy.rowCount() == len(NODULES)
    assert not window.provider.demo  # the server said its models are not the demo weights
    assert "not for clinical use" in window.detection_panel.disclaimer.text()


def test_cancel_while_the_server_detects(qtbot, server_window, server, errors) -> None:
    from tests.engine.fake_chest import lung_block

    detector = server.state.service.detector
    entered, release = threading.Event(), threading.Event()
    real = detector.detect

    def held(ct, *args, **kwargs):
        entered.set()
        release.wait(30)
        return real(ct, *args, **kwargs)

    detector.detect = held
    window = server_window
    window.state.set_volume(lung_block())
    try:
        with qtbot.waitSignal(window.detector.cancelled, timeout=30000):
            qtbot.mouseClick(window.detection_panel.detect_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(entered.is_set, timeout=20000)
            qtbot.mouseClick(window.detection_panel.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not window.detector.busy, timeout=10000)
        assert window.state.result is None and errors == []
    finally:
        release.set()


def test_an_unreachable_server_is_reported_in_the_dialog(qtbot, tmp_path, token_file, errors) -> None:
    from app.main_window import MainWindow
    from tests.engine.deploy.loopback import free_port
    from tests.engine.fake_chest import lung_block

    url = f"http://127.0.0.1:{free_port()}"
    settings = AppSettings()
    settings.set_detect_target(DetectTarget(on_server=True, url=url, token_file=str(token_file)).to_settings())
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    window.state.set_volume(lung_block())
    click_detect_and_wait(qtbot, window, timeout=30000)
    assert len(errors) == 1 and url in errors[0][1] and "connection refused" in errors[0][1]
    assert TOKEN not in errors[0][1]


def test_the_dialog_checks_and_returns_the_target(qtbot, tmp_path, token_file) -> None:
    from app.workers import ThreadPool

    pool = ThreadPool()
    dialog = DetectTargetDialog(DetectTarget(), pool)
    qtbot.addWidget(dialog)
    assert dialog.local.isChecked() and not dialog.url.isEnabled()
    dialog.server.setChecked(True)
    assert dialog.url.isEnabled()
    dialog.url.setText("http://10.0.0.5:8000")
    dialog.token_file.setText(str(tmp_path / "missing"))
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "no token file" in dialog.status.text()
    dialog.token_file.setText(str(token_file))
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert dialog.target() == DetectTarget(on_server=True, url="http://10.0.0.5:8000", token_file=str(token_file))
    assert DetectTarget.from_settings(dialog.target().to_settings()) == dialog.target()
    assert DetectTarget.from_settings({"on_server": "yes", "timeout_s": "x"}) == DetectTarget()
