"""Child-process runs: a stop request (STOP file or SIGINT) leaves valid checkpoints; two-process DDP on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.checkpoints import load_checkpoint
from engine.run_layout import STOP_FILE_NAME
from training.cli import main
from training.events import read_events

from .test_runs import PRECISION

REPO = Path(__file__).resolve().parents[2]


def _child(args: list[str], data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "LUNGCAD_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_training(child: subprocess.Popen) -> list[dict]:
    """Read the child's JSON events until it is inside a training epoch."""
    seen = []
    for line in child.stdout:
        event = json.loads(line)
        seen.append(event)
        if event["event"] == "progress" and event.get("phase") == "train":
            return seen
        assert event["event"] != "error", event
    raise AssertionError(f"the child ended before training: {child.stderr.read()}")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["file", "sigint"])
def test_a_stop_request_ends_after_the_batch_with_valid_checkpoints(tiny_dataset, tmp_path: Path, how: str) -> None:
    run_dir = tmp_path / "run"
    child = _child(
        ["-m", "training", "classifier", "--data", str(tiny_dataset.root), "--run-dir", str(run_dir),
         "--val-stride", "3", "--device", "cpu", "--precision", PRECISION, "--epochs", "3",
         "--epoch-size", "100000", "--batch-size", "4"],
        tmp_path / "user",
    )
    try:
        _wait_for_training(child)
        if how == "file":
            (run_dir / STOP_FILE_NAME).touch()
        else:
            child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=180)
    finally:
        child.kill()
    assert child.returncode == 0, err
    finished = json.loads(out.splitlines()[-1])
    assert finished["event"] == "finished" and finished["status"] == "stopped"
    assert ("stop file" if how == "file" else "SIGINT") in finished["reason"]
    last = load_checkpoint(run_dir / "checkpoints/last.pt", expected_kind="classifier")
    assert last.metadata["epoch"] == 0 and last.metadata["partial_epoch"] == 1
    assert 0 < last.metadata["samples_seen"] < 100000
    events = read_events(run_dir / "metrics.jsonl")
    assert [(e["phase"], e["partial"]) for e in events if e["event"] == "epoch"] == [("train", True)]
    # resuming repeats the unfinished epoch (and the stale STOP file does not stop it)
    assert main(["classifier", "--resume", str(run_dir), "--epochs", "1", "--epoch-size", "8", "--no-json"]) == 0
    resumed = load_checkpoint(run_dir / "checkpoints/last.pt")
    assert resumed.metadata["epoch"] == 1 and resumed.metadata["partial_epoch"] is None
    assert not (run_dir / STOP_FILE_NAME).exists()


@pytest.mark.timeout(300)
def test_two_process_ddp_on_cpu(tiny_dataset, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    child = _child(
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "training", "classifier",
         "--data", str(tiny_dataset.root), "--run-dir", str(run_dir), "--val-stride", "3", "--device", "cpu",
         "--precision", PRECISION, "--epochs", "2", "--epoch-size", "32", "--batch-size", "8", "--validation-cadence", "1",
         "--seed", "0"],
        tmp_path / "user",
    )
    out, err = child.communicate(timeout=280)
    assert child.returncode == 0, err
    events = read_events(run_dir / "metrics.jsonl")
    assert [json.loads(line) for line in out.splitlines() if line.startswith("{")] == events  # rank 0 only
    started = [e for e in events if e["event"] == "run_started"]
    assert len(started) == 1 and started[0]["world_size"] == 2
    train = [e for e in events if e["event"] == "epoch" and e["phase"] == "train"]
    val = [e for e in events if e["event"] == "epoch" and e["phase"] == "val"]
    assert [e["metrics"]["samples"] for e in train] == [32, 32]  # both ranks' shares, reduced
    assert [e["metrics"]["samples"] for e in val] == [27, 27]  # every validation candidate exactly once
    assert val[0]["metrics"]["n_pos"] == 3
    last = load_checkpoint(run_dir / "checkpoints/last.pt", expected_kind="classifier")
    assert last.metadata["epoch"] == 2 and last.metadata["samples_seen"] == 64
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "completed"
