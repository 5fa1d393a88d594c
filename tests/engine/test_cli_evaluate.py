"""``python main.py evaluate``: arguments, printed report, written files (fake detector)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import main
from engine.commands import evaluate as evaluate_command
from tests.engine.test_evaluation import FakeDetector, classify_at, write_dataset


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> FakeDetector:
    detector = FakeDetector()
    monkeypatch.setattr(evaluate_command, "build_detector", lambda args: (detector, "fake", classify_at))
    return detector


def test_evaluate_prints_the_report_and_writes_files(tmp_path: Path, capsys, fake_detector: FakeDetector) -> None:
    data = write_dataset(tmp_path / "luna")
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", str(data), "--split", "all", "--out", str(out), "--bootstrap", "20", "--per-series"]
    assert main.main(argv) == 0
    text = capsys.readouterr().out
    assert "Total" in text and "Pred. Malignant" in text and "1.3.6.1.2  (2 candidates)" in text
    assert "CPM        0.714" in text
    for name in ("submission.csv", "report.json", "froc.png", "roc.png"):
        assert (out / name).is_file()
    assert json.loads((out / "report.json").read_text())["n_series"] == 3
    assert len(fake_detector.calls) == 3
    # a rerun resumes from the cache, and may change thresholds
    assert main.main(argv + ["--nodule-threshold", "0.95"]) == 0
    assert len(fake_detector.calls) == 3
    assert "(3 from the cache)" in capsys.readouterr().out


def test_default_output_folder_is_under_the_user_runs(tmp_path: Path) -> None:
    out = evaluate_command.default_out_dir(tmp_path / "luna16", "val")
    assert out.name == "evaluate-luna16-val" and out.parent.name == "runs"


def test_fingerprint_follows_file_contents(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights-1")
    b.write_bytes(b"weights-1")
    b2 = tmp_path / "sub"
    b2.mkdir()
    assert evaluate_command.file_fingerprint([a]) != evaluate_command.file_fingerprint([b])  # names count
    (b2 / "a.pt").write_bytes(b"weights-1")
    assert evaluate_command.file_fingerprint([a]) == evaluate_command.file_fingerprint([b2 / "a.pt"])
    (b2 / "a.pt").write_bytes(b"weights-2")
    assert evaluate_command.file_fingerprint([a]) != evaluate_command.file_fingerprint([b2 / "a.pt"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--nodule-threshold", "1.5"], "not a probability"),
        (["--val-stride", "0"], "below the minimum 1"),
        (["--max-series", "x"], "invalid integer value"),
        (["--split", "nope"], "invalid choice"),
    ],
)
def test_bad_arguments_are_refused(extra: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main.main(["evaluate", "--data", "somewhere"] + extra)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_missing_dataset_is_an_engine_error(tmp_path: Path, capsys, fake_detector: FakeDetector) -> None:
    assert main.main(["evaluate", "--data", str(tmp_path / "nothing")]) == 2
    assert "nothing: is not a folder" in capsys.readouterr().err
