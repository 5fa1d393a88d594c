"""The Training panel's Qt-free parts: line buffering, event parsing, run records, run folders, requests, model choice."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.model_choice import ModelChoice, run_of_checkpoint
from app.training.lines import LineBuffer, parse_event
from app.training.request import TrainRequest, check_dataset
from app.training.record import RunRecord, RunStatus, format_duration
from app.training.run_folders import STALE_AFTER_S, MetricsReader, finished_checkpoints, last_event, list_runs, read_run
from engine.errors import DatasetError, TrainingRunError
from tests.app.training_support import write_events, write_luna_folder


def _started(**extra) -> dict:
    return {"event": "run_started", "run": "r", "time": 100.0, "kind": "classifier", "epochs": 3, "start_epoch": 1,
            "device": "cpu", "config": {"validation_cadence": 1, "best_metric": "f1"}, **extra}


def _epoch(k: int, phase: str, time_s: float, partial: bool = False, **metrics) -> dict:
    values = {"loss": 1.0 / k, "precision": 0.5, "recall": 0.25 * k, "f1": None, "auc": 0.6, **metrics}
    return {"event": "epoch", "run": "r", "time": time_s, "epoch": k, "epochs": 3, "phase": phase, "partial": partial,
            "metrics": values}


# --- lines ------------------------------------------------------------------------------------------
def test_line_buffer_keeps_partial_lines_across_chunks() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b'{"event": "pro') == []
    assert buffer.pending == b'{"event": "pro'
    assert buffer.feed(b'gress"}\r\nsecond\nthi') == ['{"event": "progress"}', "second"]
    assert buffer.feed(b"rd\n\n") == ["third", ""]
    assert buffer.feed(b"tail without newline") == []
    assert buffer.flush() == ["tail without newline"]
    assert buffer.flush() == []


def test_line_buffer_replaces_bad_bytes_and_bounds_pending() -> None:
    assert LineBuffer().feed(b"caf\xff\n") == ["caf\ufffd"]
    small = LineBuffer(max_pending=8)
    assert small.feed(b"0123456789") == ["0123456789"]  # released rather than held forever
    assert small.pending == b""
    # a multi-byte character split between two chunks is decoded whole
    text = "é\n".encode()
    assert LineBuffer().feed(text[:1]) == [] and LineBuffer().feed(text) == ["é"]
    buffer = LineBuffer()
    buffer.feed(text[:1])
    assert buffer.feed(text[1:]) == ["é"]


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"event": "epoch", "epoch": 1}', {"event": "epoch", "epoch": 1}),
        ('  {"event":"finished"}  ', {"event": "finished"}),
        ("plain text", None),
        ("{torn", None),
        ("[1, 2]", None),
        ('{"no_event": 1}', None),
        ('{"event": 5}', None),
        ("", None),
    ],
)
def test_parse_event(line: str, expected: dict | None) -> None:
    assert parse_event(line) == expected


# --- a run's record ---------------------------------------------------------------------------------
def test_record_folds_events_into_curves_checkpoints_and_status(tmp_path: Path) -> None:
    record = RunRecord("r")
    assert record.apply(_started(run_dir=str(tmp_path))) == "run_started"
    assert record.status is RunStatus.RUNNING and record.kind == "classifier" and record.run_dir == tmp_path
    record.apply({"event": "progress", "time": 101.0, "phase": "cache", "fraction": 0.5, "samples": 1, "samples_total": 2})
    assert record.status is RunStatus.PREPARING and record.overall_fraction() is None
    record.apply(_epoch(1, "train", 110.0))
    record.apply(_epoch(1, "val", 120.0))
    record.apply(_epoch(2, "train", 130.0, partial=True))
    assert record.curve("train", "loss") == ([1, 2], [1.0, 0.5])
    assert record.curve("val", "recall") == ([1], [0.25])
    assert record.curve("train", "f1") == ([], [])  # null (non-finite) values are not drawn
    assert record.completed_epochs == 1  # epoch 2 was cut short
    path = tmp_path / "best.pt"
    path.write_bytes(b"x")
    record.apply({"event": "checkpoint", "time": 121.0, "epoch": 1, "which": "best", "path": str(path), "sha256": "ab",
                  "metric": "f1", "score": 0.4})
    assert record.checkpoints["best"].score == 0.4 and record.best_epoch == 1
    assert record.detect_checkpoint() == path
    record.apply({"event": "finished", "time": 140.0, "status": "stopped", "reason": "stop file found", "epoch": 1,
                  "best_epoch": 1, "best_metric": "f1", "best_score": 0.4})
    assert record.status is RunStatus.STOPPED and record.status.ended and record.message == "stop file found"
    assert record.last_event_at == 140.0


def test_record_errors_unknown_and_malformed_events() -> None:
    record = RunRecord("r")
    assert record.apply({"event": "something_new", "x": 1}) == ""
    with pytest.raises(ValueError, match="malformed epoch event"):
        record.apply({"event": "epoch", "epoch": "one", "phase": "train", "metrics": {}, "time": 1.0})
    with pytest.raises(ValueError, match="malformed progress"):
        record.apply({"event": "progress", "phase": "train"})
    with pytest.raises(ValueError):
        record.apply({"event": "epoch", "epoch": 1, "phase": "test", "metrics": {}, "time": 1.0})
    record.apply({"event": "error", "message": "CUDA out of memory", "error_type": "OutOfMemoryError"})
    assert record.status is RunStatus.FAILED and "out of memory" in record.message


def test_progress_fraction_and_eta() -> None:
    record = RunRecord("r")
    record.apply(_started())  # 3 epochs from t = 100, validating every epoch
    train = {"event": "progress", "time": 105.0, "phase": "train", "epoch": 1, "epochs": 3, "fraction": 0.5,
             "samples": 4, "samples_total": 8, "eta_s": 5.0}
    record.apply(train)
    assert record.overall_fraction() == pytest.approx(0.5 * 0.75 / 3)
    assert record.eta_s() == pytest.approx(5.0 + 2 * 10.0)  # no epoch done yet: the training phase's pace
    record.apply(_epoch(1, "train", 110.0))
    record.apply(_epoch(1, "val", 130.0))  # the first epoch took 30 s
    record.apply({**train, "time": 135.0, "epoch": 2, "eta_s": 4.0})
    assert record.eta_s() == pytest.approx(4.0 + 1 * 30.0)
    record.apply({**train, "phase": "val", "epoch": 3, "fraction": 1.0, "eta_s": 0.0})
    assert record.overall_fraction() == pytest.approx(1.0) and record.eta_s() == 0.0


@pytest.mark.parametrize("seconds, text", [(None, "—"), (4.4, "4 s"), (187, "3:07"), (3723, "1:02:03")])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


# --- run folders ------------------------------------------------------------------------------------
def _finished_run(root: Path, name: str, kind: str = "classifier", finished: bool = True) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"x")
    (run / "config.json").write_text(f'{{"config": {{"kind": "{kind}", "run_name": "{name}", "epochs": 2}}}}')
    events = [_started(kind=kind), _epoch(1, "train", 110.0), _epoch(1, "val", 120.0)]
    if finished:
        events.append({"event": "finished", "time": 130.0, "status": "completed", "epoch": 1, "best_epoch": 1,
                       "best_metric": "f1", "best_score": 0.5})
    write_events(run / "metrics.jsonl", events, torn_tail='{"event": "prog')
    return run


def test_read_run_skips_a_torn_last_line_and_marks_silent_runs_interrupted(tmp_path: Path) -> None:
    done = _finished_run(tmp_path, "done")
    record, reader = read_run(done)
    assert record.status is RunStatus.COMPLETED and record.curve("val", "loss") == ([1], [1.0])
    assert reader.offset == (done / "metrics.jsonl").stat().st_size and reader.skipped == 0
    quiet = _finished_run(tmp_path, "quiet", finished=False)
    assert read_run(quiet)[0].status is RunStatus.RUNNING  # written just now: still going
    old = time.time() - STALE_AFTER_S - 60
    os.utime(quiet / "metrics.jsonl", (old, old))
    record, _ = read_run(quiet)
    assert record.status is RunStatus.INTERRUPTED and "no longer running" in record.message
    assert record.status.usable and record.detect_checkpoint() == quiet / "checkpoints" / "best.pt"  # atomic files
    assert not RunStatus.FAILED.usable and not RunStatus.RUNNING.ended


def test_metrics_reader_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read_new() == [] and reader.age_s() is None
    write_events(path, [_started()], torn_tail='{"event": "epo')
    assert [e["event"] for e in reader.read_new()] == ["run_started"]
    with path.open("a") as stream:
        stream.write('ch", "epoch": 1}\nnot an event\n')
    assert reader.read_new() == [{"event": "epoch", "epoch": 1}] and reader.skipped == 1
    path.write_text('{"event": "error"}\n')  # replaced by a shorter file: read from the start
    assert reader.read_new() == [{"event": "error"}]


def test_list_runs_and_finished_checkpoints(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "none") == [] and finished_checkpoints(tmp_path / "none", "classifier") == []
    _finished_run(tmp_path, "a-cls")
    _finished_run(tmp_path, "b-seg", kind="segmentation")
    _finished_run(tmp_path, "c-running", finished=False)
    (tmp_path / "not-a-run").mkdir()
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert set(runs) == {"a-cls", "b-seg", "c-running"}
    assert runs["a-cls"].status is RunStatus.COMPLETED and runs["a-cls"].checkpoint == tmp_path / "a-cls/checkpoints/best.pt"
    assert runs["c-running"].checkpoint is None and runs["b-seg"].kind == "segmentation"
    assert finished_checkpoints(tmp_path, "classifier") == [("a-cls", tmp_path / "a-cls/checkpoints/best.pt")]
    assert [name for name, _ in finished_checkpoints(tmp_path, "segmentation")] == ["b-seg"]
    assert last_event(tmp_path / "a-cls/metrics.jsonl")["event"] == "finished"


# --- requests and datasets --------------------------------------------------------------------------
def test_request_arguments_and_checks(tmp_path: Path) -> None:
    request = TrainRequest(kind="segmentation", data=tmp_path / "data", run_name="seg-1", runs_root=tmp_path / "runs",
                           epochs=3, batch_size=4, ratio=0, augment=("flip", "noise"), device="cpu", extra=("--lr", "0.01"))
    request.check()
    args = request.arguments()
    assert args[:2] == ["segmentation", "seg-1"]  # the name first: --augment-noise takes an optional value
    assert args[args.index("--run-dir") + 1] == str((tmp_path / "runs" / "seg-1").resolve())
    assert {"--augment-flip", "--augment-noise"} <= set(args) and "--augment-scale" not in args
    assert args[args.index("--ratio") + 1] == "0" and "--epoch-size" not in args and args[-2:] == ["--lr", "0.01"]
    from training.cli import build_parser

    parsed = build_parser().parse_args(args)  # the real CLI reads these arguments as meant
    assert (parsed.run_name, parsed.epochs, parsed.batch_size, parsed.ratio, parsed.device) == ("seg-1", 3, 4, 0, "cpu")
    assert parsed.augment_flip and parsed.augment_noise == -1.0 and parsed.lr == 0.01
    with pytest.raises(TrainingRunError, match="folder name"):
        TrainRequest("classifier", tmp_path, "bad/name", tmp_path).check()
    with pytest.raises(TrainingRunError, match="fine-tuned"):
        TrainRequest("malignancy", tmp_path, "m", tmp_path).check()
    with pytest.raises(TrainingRunError, match="no such checkpoint"):
        TrainRequest("malignancy", tmp_path, "m", tmp_path, finetune=tmp_path / "missing.pt").check()
    with pytest.raises(TrainingRunError, match="at least 1"):
        TrainRequest("classifier", tmp_path, "c", tmp_path, epochs=0).check()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    with pytest.raises(TrainingRunError, match="already holds a training run"):
        TrainRequest("classifier", tmp_path, "taken", tmp_path).check()


def test_check_dataset(tmp_path: Path) -> None:
    info = check_dataset(write_luna_folder(tmp_path / "ok"))
    assert (info.series, info.nodules, info.has_candidates, info.has_malignancy) == (1, 1, True, False)
    assert info.problem_for("classifier") is None and "malignancy" in info.problem_for("malignancy")
    assert "candidates.csv" in check_dataset(write_luna_folder(tmp_path / "nc", candidates=False)).problem_for("classifier")
    with pytest.raises(DatasetError, match="is not a folder"):
        check_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no series"):
        check_dataset(tmp_path / "empty")


# --- model choice -----------------------------------------------------------------------------------
def test_model_choice_settings_and_words(tmp_path: Path) -> None:
    run = _finished_run(tmp_path, "my-run")
    best = run / "checkpoints" / "best.pt"
    choice = ModelChoice().with_path("classifier", best).with_path("malignancy", tmp_path / "book.state")
    assert choice.any_demo and not choice.all_demo and ModelChoice().all_demo
    saved = choice.to_settings()
    assert saved["segmentation"] == "demo" and ModelChoice.from_settings(saved) == choice
    assert ModelChoice.from_settings({"segmentation": "", "nodule": "/x"}) == ModelChoice()
    assert run_of_checkpoint(best) == "my-run" and run_of_checkpoint(tmp_path / "book.state") is None
    assert choice.summary() == "Models: seg demo · nodule run my-run (best) · malignancy book.state"
    assert ModelChoice().summary() == "Models: demo"
    assert choice.missing() == ["malignancy"] and choice.without_missing().malignancy is None
    with pytest.raises(ValueError, match="unknown model role"):
        choice.path("nodule")
