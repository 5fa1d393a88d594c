"""Tiny end-to-end runs of the three trainers: files, events, checkpoints, falling loss, resume, fine-tuning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from engine.checkpoints import load_checkpoint
from engine.devices import cpu_bf16_native
from training.cli import main
from training.config import TrainConfig
from training.events import read_events

#: bfloat16 autocast is ~4× faster on CPUs that compute it natively; elsewhere float32.
PRECISION = "bfloat16" if cpu_bf16_native() else "float32"


def train(kind: str, data: Path, run_dir: Path, *extra: str) -> int:
    args = [kind, "--data", str(data), "--run-dir", str(run_dir), "--val-stride", "3", "--device", "cpu"]
    return main([*args, "--precision", PRECISION, "--seed", "0", *extra])


def epochs_of(events: list[dict], phase: str) -> list[dict]:
    return [e for e in events if e["event"] == "epoch" and e["phase"] == phase]


def tensorboard_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    return set(tags["scalars"]) | set(tags["images"]) | set(tags["histograms"])


def test_classifier_run_writes_everything_and_learns(tiny_dataset, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "cls"
    rc = train("classifier", tiny_dataset.root, run_dir, "--epochs", "2", "--epoch-size", "48", "--batch-size", "16",
               "--validation-cadence", "1")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("config.json", "metrics.jsonl", "model_card.md", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    events = read_events(run_dir / "metrics.jsonl")
    stdout_events = [json.loads(line) for line in captured.out.splitlines()]
    assert stdout_events == events  # the same stream on stdout and in the file
    assert events[0]["event"] == "progress" and events[0]["phase"] == "cache"
    started = next(e for e in events if e["event"] == "run_started")
    assert started["kind"] == "classifier" and started["start_epoch"] == 1 and started["val_samples"] == 27
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "completed"
    assert all(e["run"] == "cls" and "time" in e for e in events)
    train_epochs, val_epochs = epochs_of(events, "train"), epochs_of(events, "val")
    assert [e["epoch"] for e in train_epochs] == [1, 2] and [e["epoch"] for e in val_epochs] == [1, 2]
    assert all(math.isfinite(v) for e in train_epochs + val_epochs for v in e["metrics"].values())
    assert val_epochs[0]["metrics"]["samples"] == 27
    assert train_epochs[-1]["metrics"]["loss"] < train_epochs[0]["metrics"]["loss"]
    assert "E2   train loss" in captured.err and "E2   val" in captured.err  # a human-readable line per epoch and phase
    last = load_checkpoint(run_dir / "checkpoints/last.pt", expected_kind="classifier")
    assert last.metadata["epoch"] == 2 and last.metadata["samples_seen"] == 96
    assert last.optimizer_state is not None and last.metadata["config"]["kind"] == "classifier"
    best = load_checkpoint(run_dir / "checkpoints/best.pt", expected_kind="classifier")
    assert best.metadata["epoch"] == events[-1]["best_epoch"]
    assert best.sha256 in (run_dir / "model_card.md").read_text()
    assert {"loss/all", "pr/f1_score", "roc/auc", "prob/neg", "prob/pos", "roc"} <= tensorboard_tags(run_dir / "tensorboard/val")


def test_segmentation_run_learns_and_logs_overlays(tiny_dataset, tmp_path: Path) -> None:
    run_dir = tmp_path / "seg"
    rc = train("segmentation", tiny_dataset.root, run_dir, "--epochs", "3", "--epoch-size", "64", "--augmented", "--no-json")
    assert rc == 0
    events = read_events(run_dir / "metrics.jsonl")
    train_epochs, val_epochs = epochs_of(events, "train"), epochs_of(events, "val")
    assert [e["epoch"] for e in val_epochs] == [1, 3]  # epoch 1, every 5th, and the last
    assert train_epochs[-1]["metrics"]["loss"] < train_epochs[0]["metrics"]["loss"]
    assert {"dice", "recall", "tp_pct", "fn_pct", "fp_pct"} <= set(val_epochs[-1]["metrics"])
    val_progress = [e for e in events if e["event"] == "progress" and e["phase"] == "val"]
    assert all(e["batch"] <= e["batches"] for e in val_progress)
    assert val_progress[-1]["batch"] == val_progress[-1]["batches"] and val_progress[-1]["fraction"] == 1.0
    best = load_checkpoint(run_dir / "checkpoints/best.pt", expected_kind="segmentation")
    assert best.metadata["best_metric"] == "recall"
    assert best.model(torch.zeros(1, 7, 40, 56)).shape == (1, 1, 40, 56)
    tags = tensorboard_tags(run_dir / "tensorboard/val")
    assert {"overlay/0", "pr/recall", "dice/pixels", "percent_all/fp"} <= tags


def test_malignancy_fine_tune_trains_only_the_head(tiny_dataset, tmp_path: Path) -> None:
    assert train("classifier", tiny_dataset.root, tmp_path / "cls", "--epoch-size", "16", "--no-json") == 0
    source = load_checkpoint(tmp_path / "cls/checkpoints/last.pt").model.state_dict()
    run_dir = tmp_path / "mal"
    rc = train("malignancy", tiny_dataset.root, run_dir, "--epochs", "2", "--epoch-size", "32", "--lr", "0.0001",
               "--finetune", str(tmp_path / "cls/checkpoints/last.pt"), "--finetune-depth", "1", "--no-json")
    assert rc == 0
    events = read_events(run_dir / "metrics.jsonl")
    assert [e["epoch"] for e in epochs_of(events, "val")] == [1, 2]  # every epoch when fine-tuning
    assert "auc" in epochs_of(events, "val")[0]["metrics"]
    tuned = load_checkpoint(run_dir / "checkpoints/last.pt", expected_kind="malignancy")
    state = tuned.model.state_dict()
    for name, tensor in source.items():  # frozen layers (BatchNorm statistics included) are untouched
        if not name.startswith("head_linear"):
            assert torch.equal(state[name], tensor), name
    assert not torch.equal(state["head_linear.weight"], source["head_linear.weight"])
    assert tuned.metadata["trained_children"] == ["head_linear"]
    assert tuned.metadata["source_id"].startswith("classifier:")


def test_init_starts_from_every_weight_and_trains_them_all(tiny_dataset, tmp_path: Path) -> None:
    assert train("classifier", tiny_dataset.root, tmp_path / "cls", "--epoch-size", "16", "--no-json") == 0
    source_ckpt = tmp_path / "cls/checkpoints/last.pt"
    source = load_checkpoint(source_ckpt).model.state_dict()
    run_dir = tmp_path / "more"
    # one step at lr 0 keeps the weights exactly: they came from the source, head included
    assert train("classifier", tiny_dataset.root, run_dir, "--epoch-size", "16", "--lr", "1e-30", "--momentum", "0",
                 "--init", str(source_ckpt), "--no-json") == 0
    kept = load_checkpoint(run_dir / "checkpoints/last.pt")
    for name, tensor in source.items():
        if "running" not in name and "num_batches" not in name:  # BatchNorm statistics follow the new batches
            assert torch.allclose(kept.model.state_dict()[name], tensor), name
    assert kept.metadata["init_id"].startswith("classifier:")
    assert "started from every weight" in (run_dir / "model_card.md").read_text()
    run_dir = tmp_path / "trained"
    assert train("classifier", tiny_dataset.root, run_dir, "--epoch-size", "32", "--lr", "0.01",
                 "--init", str(source_ckpt), "--no-json") == 0
    state = load_checkpoint(run_dir / "checkpoints/last.pt").model.state_dict()
    changed = {name.split(".")[0] for name, tensor in source.items()
               if tensor.is_floating_point() and not torch.equal(state[name], tensor)}
    assert "head_linear" in changed and len(changed) > 2  # every layer trains, not just the head
    run_dir = tmp_path / "top"
    assert train("classifier", tiny_dataset.root, run_dir, "--epoch-size", "32", "--lr", "0.01",
                 "--init", str(source_ckpt), "--init-depth", "2", "--no-json") == 0
    top = load_checkpoint(run_dir / "checkpoints/last.pt")
    changed = {name.split(".")[0] for name, tensor in source.items()
               if not torch.equal(top.model.state_dict()[name], tensor)}
    assert changed == set(top.metadata["trained_children"]) and len(changed) == 2  # the trunk stays the source's
    with pytest.raises(ValueError, match="init"):
        TrainConfig(kind="segmentation", run_name="x", data=".", run_dir=".", init=str(source_ckpt))


def test_resume_continues_at_the_next_epoch(tiny_dataset, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train("segmentation", tiny_dataset.root, run_dir, "--epochs", "1", "--epoch-size", "32", "--no-json") == 0
    first = load_checkpoint(run_dir / "checkpoints/last.pt")
    assert main(["segmentation", "--resume", str(run_dir), "--epochs", "2", "--no-json"]) == 0
    events = read_events(run_dir / "metrics.jsonl")
    starts = [e for e in events if e["event"] == "run_started"]
    assert [(s["resumed"], s["start_epoch"]) for s in starts] == [(False, 1), (True, 2)]
    assert [e["epoch"] for e in epochs_of(events, "train")] == [1, 2]
    second = load_checkpoint(run_dir / "checkpoints/last.pt")
    assert second.metadata["epoch"] == 2 and second.metadata["samples_seen"] == 64
    assert second.sha256 != first.sha256
    assert second.metadata["config"]["epoch_size"] == 32  # settings come from the run's config.json
    record = json.loads((run_dir / "config.json").read_text())
    assert len(record["launches"]) == 2 and "--resume" in record["launches"][1]["argv"]
    # nothing left to do: a resume at the planned last epoch finishes at once
    assert main(["segmentation", "--resume", str(run_dir), "--no-json"]) == 0
    assert read_events(run_dir / "metrics.jsonl")[-1]["status"] == "completed"


def test_a_run_never_overwrites_another(tiny_dataset, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    assert train("segmentation", tiny_dataset.root, run_dir, "--no-json") == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_a_bad_dataset_ends_with_an_error_event(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert train("classifier", tmp_path / "empty", tmp_path / "run") == 2
    captured = capsys.readouterr()
    last = json.loads(captured.out.splitlines()[-1])
    assert last["event"] == "error" and last["error_type"] == "DatasetError" and "holds no series" in last["message"]
    assert read_events(tmp_path / "run/metrics.jsonl")[-1] == last
    assert "error:" in captured.err


def test_resume_needs_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["classifier", "--resume", str(tmp_path)]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_trainers_read_the_phantom_generators_datasets(tmp_path: Path) -> None:
    from engine.luna import LunaIndex
    from engine.phantom.dataset import write_dataset

    summary = write_dataset(tmp_path / "phantoms", 3, seed=3, preset="small")
    index = LunaIndex.open(summary.root, require_candidates=True)
    train_uids = index.split(val_stride=2).train
    assert main(["prepcache", "--data", str(summary.root), "--cache-dir", str(tmp_path / "cache")]) == 0
    run_dir = tmp_path / "seg"
    rc = main(["segmentation", "--data", str(summary.root), "--run-dir", str(run_dir), "--val-stride", "2",
               "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--epoch-size", "16", "--no-json"])
    assert rc == 0
    events = read_events(run_dir / "metrics.jsonl")
    assert not [e for e in events if e["event"] == "progress" and e["phase"] == "cache"]  # prepcache did it
    started = next(e for e in events if e["event"] == "run_started")
    assert started["train_series"] == len(train_uids) and started["val_series"] == 3 - len(train_uids)
    assert events[-1]["status"] == "completed"
