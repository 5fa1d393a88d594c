"""The run-folder layout: file names, the checkpoint Detect takes, stop requests, run names."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TrainingRunError
from engine.run_layout import STOP_FILE_NAME, RunLayout, check_run_name


def test_the_layout_of_a_run_folder(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run-a")
    assert layout.config == tmp_path / "run-a" / "config.json"
    assert layout.metrics == tmp_path / "run-a" / "metrics.jsonl"
    assert layout.last == tmp_path / "run-a" / "checkpoints" / "last.pt"
    assert layout.best == tmp_path / "run-a" / "checkpoints" / "best.pt"
    assert layout.card.name == "model_card.md" and layout.tensorboard.name == "tensorboard"
    assert layout.stop_file.name == STOP_FILE_NAME == "STOP"
    assert RunLayout(str(tmp_path)).root == tmp_path  # a string root becomes a Path


def test_holds_run_and_detect_checkpoint(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert not layout.holds_run and not layout.looks_like_run and layout.detect_checkpoint() is None
    layout.metrics.write_text("", encoding="utf-8")
    assert layout.looks_like_run and not layout.holds_run
    layout.config.write_text("{}", encoding="utf-8")
    assert layout.holds_run
    layout.checkpoints.mkdir()
    layout.last.write_bytes(b"last")
    assert layout.detect_checkpoint() == layout.last
    layout.best.write_bytes(b"best")
    assert layout.detect_checkpoint() == layout.best


def test_of_checkpoint_finds_the_run_folder(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "my-run")
    layout.checkpoints.mkdir(parents=True)
    assert RunLayout.of_checkpoint(layout.best) is None  # no config.json: not a run
    layout.config.write_text("{}", encoding="utf-8")
    assert RunLayout.of_checkpoint(layout.best) == layout
    assert RunLayout.of_checkpoint(tmp_path / "book.state") is None


def test_request_stop_writes_the_stop_file(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.request_stop() == layout.stop_file and layout.stop_file.is_file()


@pytest.mark.parametrize("name", ["run-1", "seg_2024.05", "A" * 80])
def test_good_run_names(name: str) -> None:
    check_run_name(name)


@pytest.mark.parametrize("name", ["", "../up", "a/b", "-dash", ".hidden", "sp ace", "A" * 81])
def test_bad_run_names(name: str) -> None:
    with pytest.raises(TrainingRunError, match="folder name"):
        check_run_name(name)
