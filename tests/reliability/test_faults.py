"""Injected faults: SIGKILL during training, a full disk during writes, an evaluation killed mid-run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engine.checkpoints import load_checkpoint, save_checkpoint
from engine.errors import CheckpointError
from engine.models import NoduleClassifier
from tests.reliability.faults import disk_full_after, kill_training


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    from tests.training.conftest import write_tiny_dataset

    return write_tiny_dataset(tmp_path / "luna", n_series=4, seed=0, negatives=6).root


# --- SIGKILL ------------------------------------------------------------------------------
def test_training_killed_three_times_keeps_loadable_checkpoints_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    report = kill_training(tiny_data, tmp_path / "run", kills=3, seed=1)
    assert not report.problems, report.problems
    assert report.kills >= 1


@pytest.mark.slow
def test_training_killed_twenty_times_keeps_loadable_checkpoints_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    report = kill_training(tiny_data, tmp_path / "run", kills=20, seed=7)
    assert not report.problems, report.problems
    assert report.kills >= 10 and report.during_writes >= 3


# --- a full disk ----------------------------------------------------------------------------
def _small_checkpoint(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    return save_checkpoint(path, NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})


def _no_temporaries(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp*"))


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    sha = _small_checkpoint(path, 0)
    with disk_full_after(4096), pytest.raises(CheckpointError, match="No space left on device") as info:
        _small_checkpoint(path, 1)
    assert "last.pt" in str(info.value) and "unchanged" in str(info.value)
    assert load_checkpoint(path).sha256 == sha and _no_temporaries(tmp_path)


def test_a_full_disk_during_exports_keeps_the_previous_files(tmp_path: Path) -> None:
    from engine.export import write_luna_csv

    csv_path = tmp_path / "findings.csv"
    write_luna_csv([("1.2.3", 1.0, 2.0, 3.0, 0.9)], csv_path)
    before = csv_path.read_bytes()
    with disk_full_after(10), pytest.raises(OSError):
        write_luna_csv([("1.2.3", 1.0, 2.0, 3.0, 0.5)] * 50, csv_path)
    assert csv_path.read_bytes() == before and _no_temporaries(tmp_path)


def test_a_full_disk_after_detection_keeps_the_printed_result(tmp_path: Path, capsys) -> None:
    from engine.commands.outputs import write_outputs
    from engine.files import write_text_atomic

    target = tmp_path / "out.json"
    target.write_text("old")
    with disk_full_after(0):
        failed = write_outputs({"--json": (target, lambda p: write_text_atomic(p, "new result")),
                                "--csv": (None, lambda p: p)})
    err = capsys.readouterr().err
    assert failed == ["--json"] and "could not be written (No space left on device)" in err and "kept" in err
    assert target.read_text() == "old"


def test_a_full_disk_during_an_evaluation_cache_write_keeps_the_previous_entry(tmp_path: Path) -> None:
    from engine.evaluation.cache import save_series, series_path

    path = series_path(tmp_path, "1.2.3")
    path.parent.mkdir(parents=True)
    path.write_text('{"old": true}')
    record = SimpleNamespace(series_uid="1.2.3", to_json=lambda: {"series_uid": "1.2.3", "rows": list(range(5000))})
    with disk_full_after(100), pytest.raises(OSError):
        save_series(tmp_path, record)  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"old": True} and _no_temporaries(path.parent)


# --- an evaluation killed mid-run --------------------------------------------------------------
class _Killed(BaseException):
    """Stands for SIGKILL in the detector (nothing after it runs in the evaluation)."""


def test_an_evaluation_killed_mid_run_resumes_without_recomputing(tmp_path: Path, monkeypatch, capsys) -> None:
    import main
    from engine.commands import evaluate as evaluate_command
    from engine.evaluation.cache import series_path
    from tests.engine.test_evaluation import CANDIDATES, FakeDetector, classify_at, write_dataset

    data = write_dataset(tmp_path / "luna")
    out = tmp_path / "eval"
    uids = sorted(CANDIDATES)

    class DyingDetector(FakeDetector):
        def detect(self, ct, progress=None, cancelled=None):
            if len(self.calls) == 2:
                raise _Killed()
            return super().detect(ct, progress, cancelled)

    first = DyingDetector()
    monkeypatch.setattr(evaluate_command, "build_detector", lambda args: (first, "fake", classify_at))
    argv = ["evaluate", "--data", str(data), "--split", "all", "--out", str(out), "--bootstrap", "0"]
    with pytest.raises(_Killed):
        main.main(argv)
    done = [uid for uid in uids if series_path(out, uid).is_file()]
    assert len(done) == 2
    for uid in done:  # finished entries are whole JSON
        json.loads(series_path(out, uid).read_text())
    (series_path(out, uids[0]).parent / f".{uids[-1]}.json.dead.tmp").write_text('{"half')  # what a kill mid-write leaves
    second = FakeDetector()
    monkeypatch.setattr(evaluate_command, "build_detector", lambda args: (second, "fake", classify_at))
    assert main.main(argv) == 0
    assert second.calls == [uid for uid in uids if uid not in done] or set(second.calls) == set(uids) - set(done)
    assert "(2 from the cache)" in capsys.readouterr().out
