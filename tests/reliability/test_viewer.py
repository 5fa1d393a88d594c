"""The viewer survives: a detection worker that raises, a training child that crashes or prints garbage, a failed export."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QFileDialog

from app.training.record import RunStatus
from tests.app.conftest import detect_and_wait, open_and_wait
from tests.app.test_training_panel import start, wait_ended


class _BrokenDetector:
    """A detector whose worker fails with an unexpected (non-engine) error."""

    def detect(self, ct, progress=None, cancelled=None):
        raise RuntimeError("segmentation kernel crashed")


def test_a_detection_worker_error_leaves_a_working_viewer(qtbot, make_window, fake_detector, write_volume, errors) -> None:
    window = make_window()
    window.provider.reset(lambda: _BrokenDetector())
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    assert window.state.result is None and errors and "segmentation kernel crashed" in errors[0][1]
    window.provider.reset(lambda: fake_detector)
    detect_and_wait(qtbot, window)
    assert window.state.result is not None  # the next Detect works


def test_a_failed_export_keeps_the_result_and_offers_another_file(qtbot, make_window, write_volume, errors, tmp_path,
                                                                  monkeypatch) -> None:
    window = make_window()
    ct = write_volume("ct.mhd")
    open_and_wait(qtbot, window, ct)
    detect_and_wait(qtbot, window)
    result = window.state.result
    raw = ct.with_suffix(".raw")
    before = raw.read_bytes()
    answers = iter([str(raw), str(tmp_path), str(tmp_path / "good.json")])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (next(answers), ""))
    written = window.export("json")
    assert len(errors) == 2 and all(title == "Export failed" for title, _ in errors)
    assert "input of this run" in errors[0][1] and "is a folder" in errors[1][1] and "Nothing is lost" in errors[0][1]
    assert written == tmp_path / "good.json" and written.is_file()
    assert raw.read_bytes() == before and window.state.result is result


@pytest.mark.parametrize("modes", [("crash", "garbage", "killed", "ok")])
def test_training_children_that_crash_or_print_garbage_never_take_the_panel_down(qtbot, make_panel, monkeypatch,
                                                                                   modes) -> None:
    panel = make_panel(modes[0])
    ended = []
    for index, mode in enumerate(modes):
        monkeypatch.setenv("FAKE_TRAINER_MODE", mode)
        start(qtbot, panel, f"run-{index}-{mode}")
        wait_ended(qtbot, panel)
        ended.append(panel.controller.viewed.status)
    assert ended == [RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPLETED]
    assert panel.reported == []  # failures are shown in the panel, not as dialogs
