"""The Training panel with a fake trainer: a normal run, garbage and split lines on stdout, crashes, OOM, Stop, re-attaching."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import app.training.process as training_process
from app.training.controller import OOM_HINT, TrainingController
from app.training.lines import LineBuffer
from app.training.panel import TrainingPanel
from app.training.record import RunStatus
from tests.app.layout_checks import clipped_texts, outside_parents
from tests.app.training_support import fake_process, write_events, write_fake_trainer, write_luna_folder


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def make_panel(qtbot, tmp_path: Path, runs_root: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``make_panel(mode, stop_timeout_ms=..., kill_timeout_ms=..., program=...)`` → a shown panel."""
    script = write_fake_trainer(tmp_path)
    dataset = write_luna_folder(tmp_path / "data")

    def make(mode: str = "ok", stop_timeout_ms: int = 5000, kill_timeout_ms: int = 1000, program: str | None = None):
        monkeypatch.setenv("FAKE_TRAINER_MODE", mode)
        process = fake_process(script, stop_timeout_ms, kill_timeout_ms)
        if program is not None:
            process.program = program
        panel = TrainingPanel(controller=TrainingController(process), runs_root=lambda: runs_root)
        panel.reported = []
        panel.error_reported.connect(lambda title, text: panel.reported.append((title, text)))
        qtbot.addWidget(panel)
        panel.resize(1280, 800)
        panel.show()
        panel.form.set_dataset(dataset)
        qtbot.waitUntil(lambda: panel.form.usable, timeout=5000)
        panel.form.epochs.setValue(2)
        return panel

    return make


def start(qtbot, panel: TrainingPanel, name: str = "fake-run") -> None:
    panel.form.run_name.setText(name)
    assert panel.form.start_button.isEnabled()
    qtbot.mouseClick(panel.form.start_button, Qt.MouseButton.LeftButton)
    assert panel.controller.busy and not panel.form.start_button.isEnabled()


def wait_ended(qtbot, panel: TrainingPanel, timeout: int = 15000) -> None:
    qtbot.waitUntil(lambda: not panel.controller.busy and panel.controller.viewed.status.ended, timeout=timeout)


def log_text(panel: TrainingPanel) -> str:
    return panel.view.log_view.toPlainText()


def test_a_run_through_the_panel_draws_curves_and_hands_its_checkpoint_to_detect(qtbot, make_panel, runs_root) -> None:
    panel = make_panel("ok")
    start(qtbot, panel)
    wait_ended(qtbot, panel)
    record = panel.controller.viewed
    assert record.status is RunStatus.COMPLETED and record.run_dir == runs_root / "fake-run"
    assert panel.view.points("val", "loss") == ([1.0, 2.0], [1.2, 0.6])
    assert panel.view.points("train", "recall") == ([1.0, 2.0], pytest.approx([0.1, 0.2]))
    assert panel.view.points("val", "dice")[0] == [1.0, 2.0] and panel.view.points("val", "auc") == ([], [])
    assert panel.view.progress.value() == 1000 and "completed" in panel.view.title.text()
    assert panel.view.checkpoints.rowCount() == 2 and panel.view.checkpoints.item(0, 0).text() == "best.pt"
    text = log_text(panel)
    assert "E2 summary on stderr" in text and "saved best.pt (epoch 2, recall 0.2000)" in text and "[stdout]" not in text
    assert (runs_root / "fake-run").is_dir() and panel.form.start_button.isEnabled()
    qtbot.wait(20)
    assert clipped_texts(panel) == [] and outside_parents(panel) == []  # the run's title, message and buttons fit
    panel.tabs.setCurrentIndex(1)  # Runs: the column widens so that run names are not cut
    qtbot.waitUntil(lambda: not panel.listing and len(panel.runs) == 1, timeout=5000)
    _assert_runs_table_fits(qtbot, panel)
    assert panel.form.run_name.text() == ""  # the next run gets a fresh name
    # Use for Detect hands over the run's best checkpoint
    assert panel.view.use_button.isEnabled()
    with qtbot.waitSignal(panel.use_for_detect_requested) as used:
        qtbot.mouseClick(panel.view.use_button, Qt.MouseButton.LeftButton)
    assert used.args == ["segmentation", runs_root / "fake-run" / "checkpoints" / "best.pt"]
    # the runs list shows it, finished
    qtbot.waitUntil(lambda: not panel.listing and len(panel.runs) == 1, timeout=5000)
    assert panel.runs[0].status is RunStatus.COMPLETED and panel.runs_table.item(0, 2).text() == "completed"


def test_garbage_on_stdout_is_shown_as_log_text(qtbot, make_panel) -> None:
    panel = make_panel("garbage")
    start(qtbot, panel)
    wait_ended(qtbot, panel)
    assert panel.controller.viewed.status is RunStatus.COMPLETED
    text = log_text(panel)
    for shown in ("[stdout] hello from a library that prints", "[stdout] {not json at all", "[stdout] [1, 2, 3]",
                  "ignored a malformed epoch event", "[stdout] \ufffd\ufffd not utf-8"):
        assert shown in text
    assert panel.view.points("val", "loss")[0] == [1.0, 2.0]


def test_a_line_split_across_reads_is_joined(qtbot, make_panel, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks: list[bytes] = []

    class RecordingBuffer(LineBuffer):
        def feed(self, chunk: bytes) -> list[str]:
            chunks.append(bytes(chunk))
            return super().feed(chunk)

    monkeypatch.setattr(training_process, "LineBuffer", RecordingBuffer)
    panel = make_panel("partial")
    start(qtbot, panel)
    wait_ended(qtbot, panel)
    # the child paused in the middle of its first line, so a read ended there
    assert any(c.startswith(b'{"event"') and not c.endswith(b"\n") for c in chunks)
    record = panel.controller.viewed
    assert record.kind == "segmentation" and record.status is RunStatus.COMPLETED  # the last line had no newline
    assert "[stdout]" not in log_text(panel)


@pytest.mark.parametrize(
    "mode, words",
    [
        ("crash", ("exited with status 1", "RuntimeError: the fake trainer fell over")),
        ("killed", ("crashed",)),
        ("oom", ("CUDA out of memory", OOM_HINT)),
    ],
)
def test_a_failing_child_shows_its_error_and_the_panel_carries_on(qtbot, make_panel, monkeypatch, mode, words) -> None:
    panel = make_panel(mode)
    start(qtbot, panel)
    wait_ended(qtbot, panel)
    record = panel.controller.viewed
    assert record.status is RunStatus.FAILED
    for word in words:
        assert word in record.message and word in panel.view.message.text()
    assert "failed" in panel.view.title.text() and not panel.view.use_button.isEnabled()
    assert panel.reported == []  # shown in the panel, not as a dialog
    # a next run works
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    start(qtbot, panel, "after-" + mode)
    wait_ended(qtbot, panel)
    assert panel.controller.viewed.status is RunStatus.COMPLETED


def test_stop_asks_the_run_to_stop_with_the_stop_file(qtbot, make_panel, runs_root) -> None:
    panel = make_panel("slow")
    start(qtbot, panel)
    qtbot.waitUntil(lambda: panel.view.points("val", "loss")[0] == [1.0], timeout=10000)
    assert panel.view.stop_button.isEnabled()
    qtbot.mouseClick(panel.view.stop_button, Qt.MouseButton.LeftButton)
    assert (runs_root / "fake-run" / "STOP").exists() and panel.controller.viewed.status is RunStatus.STOPPING
    assert not panel.view.stop_button.isEnabled()
    wait_ended(qtbot, panel)
    record = panel.controller.viewed
    assert record.status is RunStatus.STOPPED and record.message == "stop file found"
    assert ("val", 2) in record.partial and record.completed_epochs == 1
    assert "process exited (exit status 0)" in log_text(panel)
    assert panel.view.use_button.isEnabled()


def test_stop_terminates_then_kills_a_child_that_ignores_it(qtbot, make_panel) -> None:
    panel = make_panel("stubborn", stop_timeout_ms=300, kill_timeout_ms=300)
    start(qtbot, panel)
    qtbot.waitUntil(lambda: panel.view.points("val", "loss")[0] == [1.0], timeout=10000)
    began = time.monotonic()
    panel.controller.stop()
    wait_ended(qtbot, panel)
    assert time.monotonic() - began < 5
    record = panel.controller.viewed
    assert record.status is RunStatus.STOPPED and "killed after not stopping in time" in record.message
    text = log_text(panel)
    assert "terminating it" in text and "killing it" in text
    assert record.detect_checkpoint() is not None  # the last checkpoint it wrote is still there


def test_a_program_that_cannot_start(qtbot, make_panel, tmp_path) -> None:
    panel = make_panel("ok", program=str(tmp_path / "no-such-python"))
    start(qtbot, panel)
    wait_ended(qtbot, panel)
    assert panel.controller.viewed.status is RunStatus.FAILED
    assert "could not be started" in panel.controller.viewed.message


def test_start_is_refused_with_a_message(qtbot, make_panel, tmp_path) -> None:
    panel = make_panel("ok")
    panel.form.set_kind("malignancy")
    assert not panel.form.start_button.isEnabled()  # the folder has no malignancy labels
    assert "annotations_with_malignancy.csv" in panel.form.data_status.text()
    panel.form.set_kind("classifier")
    panel.form.run_name.setText("bad name!")
    qtbot.mouseClick(panel.form.start_button, Qt.MouseButton.LeftButton)
    assert panel.reported and "cannot be a folder name" in panel.reported[0][1] and not panel.controller.busy
    panel.form.set_dataset(tmp_path / "nowhere")
    qtbot.waitUntil(lambda: not panel.form.checking, timeout=5000)
    assert "Not a usable LUNA16-format folder" in panel.form.data_status.text() and "is not a folder" in panel.form.data_status.text()
    assert not panel.form.start_button.isEnabled()


# --- re-attaching ------------------------------------------------------------------------------------
def _events(name: str, epochs: int) -> list[dict]:
    events = [{"event": "run_started", "run": name, "time": time.time(), "kind": "classifier", "epochs": 3, "start_epoch": 1,
               "device": "cpu", "config": {"validation_cadence": 1, "best_metric": "f1"}}]
    for k in range(1, epochs + 1):
        for phase in ("train", "val"):
            events.append({"event": "epoch", "run": name, "time": time.time(), "epoch": k, "epochs": 3, "phase": phase,
                           "partial": False, "metrics": {"loss": 1.0 / k, "auc": 0.5 + 0.1 * k, "f1": 0.2 * k}})
    return events


def _finished(name: str) -> dict:
    return {"event": "finished", "run": name, "time": time.time(), "status": "completed", "reason": "", "epoch": 3,
            "best_epoch": 3, "best_metric": "f1", "best_score": 0.6, "duration_s": 12.0}


def _assert_runs_table_fits(qtbot, panel: TrainingPanel) -> None:
    qtbot.wait(20)
    table = panel.runs_table
    for row in range(table.rowCount()):
        for column in range(table.columnCount()):
            text = table.item(row, column).text()
            assert table.columnWidth(column) >= table.fontMetrics().horizontalAdvance(text) + 6, text  # its margins
    last = table.columnCount() - 1
    assert table.columnViewportPosition(last) + table.columnWidth(last) <= table.viewport().width()  # none cut off
    assert clipped_texts(panel) == [] and outside_parents(panel) == []


def test_the_runs_list_shows_whole_run_names(qtbot, make_panel, runs_root) -> None:
    name = "segmentation-20261203-094717-augmented"  # a default name and then some
    run = runs_root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"kind": "segmentation", "run_name": name, "epochs": 3}}))
    write_events(run / "metrics.jsonl", [*_events(name, 3), _finished(name)])
    panel = make_panel("ok")
    panel.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: not panel.listing and len(panel.runs) == 1, timeout=5000)
    _assert_runs_table_fits(qtbot, panel)
    assert panel.view.plots_widget.width() >= 2 * 300  # the curves keep their room beside the wider column
    panel.tabs.setCurrentIndex(0)  # back to the form's own width
    qtbot.wait(20)
    assert panel.splitter.sizes()[0] < 500


def test_reopening_a_finished_run_from_its_metrics(qtbot, make_panel, runs_root) -> None:
    run = runs_root / "old-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"x")
    (run / "config.json").write_text('{"config": {"kind": "classifier", "run_name": "old-run", "epochs": 3}}')
    write_events(run / "metrics.jsonl", [*_events("old-run", 3), _finished("old-run")], torn_tail='{"event": "pro')
    panel = make_panel("ok")  # a new session of the panel
    qtbot.waitUntil(lambda: not panel.listing and len(panel.runs) == 1, timeout=5000)
    assert panel.runs_table.item(0, 2).text() == "completed" and panel.runs_table.item(0, 3).text() == "3/3"
    panel.runs_table.selectRow(0)
    assert panel.use_run_button.isEnabled()
    panel.open_button.click()
    record = panel.controller.viewed
    assert record.status is RunStatus.COMPLETED and record.name == "old-run"
    assert panel.view.points("val", "auc") == ([1.0, 2.0, 3.0], pytest.approx([0.6, 0.7, 0.8]))
    assert "Dice" not in panel.view.plots["Dice · AUC"].titleLabel.text  # the title follows what the run has
    text = log_text(panel)
    assert "E3 val" in text and "completed after 3 epoch(s); best f1 0.6000 at epoch 3" in text
    with qtbot.waitSignal(panel.use_for_detect_requested) as used:
        panel.use_run_button.click()
    assert used.args == ["classifier", run / "checkpoints" / "best.pt"]
    # a run folder that does not say what it trained cannot go to Detect
    (run / "config.json").unlink()
    write_events(run / "metrics.jsonl", [_finished("old-run")])
    panel.refresh_runs()
    qtbot.waitUntil(lambda: not panel.listing and panel.runs[0].kind == "", timeout=5000)
    panel.runs_table.selectRow(0)
    panel.use_run_button.click()
    assert panel.reported and "model kind is unknown" in panel.reported[-1][1]


def test_reattaching_to_a_run_still_going_follows_its_metrics(qtbot, make_panel, runs_root) -> None:
    run = runs_root / "elsewhere"
    (run / "config.json").parent.mkdir(parents=True)
    (run / "config.json").write_text('{"config": {"kind": "classifier", "run_name": "elsewhere", "epochs": 3}}')
    write_events(run / "metrics.jsonl", _events("elsewhere", 1), torn_tail='{"event": "epoch", "run": "else')
    panel = make_panel("ok")
    panel.controller.open_run(run)
    record = panel.controller.viewed
    assert record.status is RunStatus.RUNNING and panel.view.points("val", "loss")[0] == [1.0]
    assert panel.view.stop_button.isEnabled() and not panel.view.use_button.isEnabled()
    # Stop on a run this session did not start: the STOP file
    panel.controller.stop()
    assert (run / "STOP").exists() and record.status is RunStatus.STOPPING
    # the other process finishes its torn line and carries on
    rest = _events("elsewhere", 2)[3:] + [{**_finished("elsewhere"), "status": "stopped", "reason": "stop file found"}]
    with (run / "metrics.jsonl").open("a") as stream:
        stream.write('where", "time": 1, "epoch": 2, "epochs": 3, "phase": "train", "partial": true, "metrics": {"loss": 9}}\n')
        stream.write("".join(json.dumps(e) + "\n" for e in rest))
    with qtbot.waitSignal(panel.controller.run_ended, timeout=5000):
        pass
    assert record.status is RunStatus.STOPPED
    assert panel.view.points("val", "loss") == ([1.0, 2.0], [1.0, 0.5])
    assert "stopped (stop file found)" in log_text(panel)


def test_closing_the_window_while_training_stops_the_child(qtbot, make_window, tmp_path, monkeypatch) -> None:
    script = write_fake_trainer(tmp_path)
    monkeypatch.setenv("FAKE_TRAINER_MODE", "slow")
    window = make_window()
    assert not window.training_window.isVisible()
    window.actions_["training"].trigger()
    assert window.training_window.isVisible() and window.training_window.isWindow()
    assert ("Ctrl+T", "Train a model…") in window.shortcut_list()
    panel = window.training_panel
    panel.controller.process.program, panel.controller.process.prefix_args = sys.executable, [str(script)]
    panel.form.set_dataset(write_luna_folder(tmp_path / "data"))
    qtbot.waitUntil(lambda: panel.form.usable, timeout=5000)
    start(qtbot, panel, "closing")
    qtbot.waitUntil(lambda: panel.view.points("val", "loss")[0] == [1.0], timeout=10000)
    asked: list[bool] = []
    monkeypatch.setattr(window, "confirm_stop_training", lambda: asked.append(False) or False)
    window.close()
    assert asked and window.isVisible() and panel.controller.busy  # "No": nothing happens
    questions: list[str] = []
    monkeypatch.delattr(window, "confirm_stop_training")  # the real question, answered Yes
    yes = QMessageBox.StandardButton.Yes
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: questions.append(text) or yes)
    window.close()
    assert questions and "The training run closing is still going" in questions[0]
    assert not panel.controller.busy and not window.isVisible()
    assert panel.controller.live.status is RunStatus.STOPPED  # through the STOP file, not a kill
    assert window.statusBar().currentMessage().startswith("Training run closing stopped")
    # the next session offers the same dataset folder, and checks it once the panel shows
    again = make_window()
    assert again.training_panel.form.data_edit.text() == str((tmp_path / "data").resolve())
    again.show_training()
    qtbot.waitUntil(lambda: again.training_panel.form.usable, timeout=5000)
