"""``python -m training release``: shipped weights without optimizer state, same sha256, a card that matches."""

from __future__ import annotations

import json

import pytest
import torch

from engine.checkpoints import load_checkpoint, save_checkpoint
from engine.errors import CheckpointKindError
from engine.models import NoduleClassifier
from training.cli import main as training_main
from training.release import release


def _run_checkpoint(tmp_path):
    """A checkpoint laid out as a run writes it: run folder with config.json, metadata, optimizer state."""
    run_dir = tmp_path / "runs" / "cls-1"
    (run_dir / "checkpoints").mkdir(parents=True)
    argv = ["python", "-m", "training", "classifier", "--data", "/data/phantoms", "--epochs", "3", "cls-1"]
    (run_dir / "config.json").write_text(json.dumps({"argv": argv, "config": {}}), encoding="utf-8")
    torch.manual_seed(0)
    model = NoduleClassifier(conv_channels=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.zeros(2, 1, 32, 48, 48))[0].sum().backward()
    optimizer.step()
    metadata = {
        "run": "cls-1", "epoch": 2, "samples_seen": 640, "best_metric": "f1", "dataset_series": "9 training, 1 validation",
        "device": "cpu", "torch_version": torch.__version__, "saved_at": "2026-11-27T12:00:00+0000",
        "loop_state": {"best_score": 0.625, "best_epoch": 2,
                       "best_metrics": {"f1": 0.625, "precision": 0.5, "recall": 0.8333, "tp": 5.0, "fp": 5.0}},
        "config": {"data": "/data/phantoms", "val_stride": 10, "seed": 7, "batch_size": 32, "epoch_size": 320,
                   "ratio": 1, "optimizer": "sgd", "lr": 0.001, "precision": "float32", "epochs": 3,
                   "augment": {"flip": True}, "run_dir": str(run_dir), "best_metric": "f1"},
    }
    path = run_dir / "checkpoints" / "best.pt"
    sha = save_checkpoint(path, model, "classifier", model_args={"conv_channels": 2}, metadata=metadata,
                          optimizer_state=optimizer.state_dict(), optimizer_name="SGD")
    return run_dir, path, sha


def test_release_keeps_weights_and_metadata_drops_optimizer_and_writes_card(tmp_path):
    run_dir, source, run_sha = _run_checkpoint(tmp_path)
    notes = "## On held-out phantoms\n\nCPM 0.5 (made-up number for this test)."
    out, card, sha = release(run_dir, tmp_path / "ship" / "classifier.pt", kind="classifier", notes=notes)

    assert sha == run_sha  # bit-identical weights
    shipped = load_checkpoint(out, expected_kind="classifier")
    original = load_checkpoint(source)
    assert shipped.optimizer_state is None and original.optimizer_state is not None
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(shipped.model.state_dict()[name], tensor)
    assert shipped.metadata["epoch"] == 2 and shipped.metadata["release_source_sha256"] == run_sha
    assert out.stat().st_size < source.stat().st_size  # momentum buffers are gone

    text = card.read_text(encoding="utf-8")
    assert card.name == "classifier.md"
    assert run_sha in text and "Not for clinical use" in text
    assert "epoch 2 of 3" in text and "`f1` = 0.6250" in text
    assert "python -m training classifier --data /data/phantoms --epochs 3 cls-1" in text
    assert "| precision | 0.5000 |" in text and "| tp | 5 |" in text
    assert text.rstrip().endswith("CPM 0.5 (made-up number for this test).")


def test_release_refuses_another_kind_and_writes_nothing(tmp_path):
    _, source, _ = _run_checkpoint(tmp_path)
    with pytest.raises(CheckpointKindError):
        release(source, tmp_path / "segmentation.pt", kind="segmentation")
    assert not (tmp_path / "segmentation.pt").exists() and not (tmp_path / "segmentation.md").exists()


def test_release_command_line(tmp_path, capsys):
    _, source, sha = _run_checkpoint(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("Trained on synthetic phantoms.\n", encoding="utf-8")
    out = tmp_path / "classifier.pt"
    assert training_main(["release", str(source), "--out", str(out), "--kind", "classifier", "--notes", str(notes)]) == 0
    assert sha in capsys.readouterr().out
    assert "Trained on synthetic phantoms." in out.with_suffix(".md").read_text(encoding="utf-8")

    assert training_main(["release", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert training_main(["release", str(source), "--out", str(out), "--notes", str(tmp_path / "none.md")]) == 2
    assert "none.md" in capsys.readouterr().err


def test_segmentation_card_names_the_loss_and_the_nodule_slices():
    from training.release import card_text

    metadata = {"config": {"data": "/d", "dice_over": "batch", "fn_weight": 2.0, "bce_weight": 4.0,
                           "nodule_slices": "all", "augment": {}}}
    text = card_text("segmentation", "ab" * 32, "segmentation.pt", metadata)
    assert "soft Dice over each batch + 2.0 × false-negative Dice + 4.0 × BCE; nodule slices: all" in text
    assert "nodule slices" not in card_text("classifier", "ab" * 32, "classifier.pt", metadata)
