"""Checkpoint round trip, book import and every refusal case."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.checkpoints import (
    load_checkpoint,
    model_weights_id,
    save_checkpoint,
    weights_sha256,
)
from engine.errors import (
    CheckpointError,
    CheckpointKindError,
    CheckpointShapeError,
    UnsafeCheckpointError,
)
from engine.models import NoduleClassifier, SegmentationModel

BOOK = Path(__file__).resolve().parents[2] / ".." / "shared" / "book"
SEG_ARGS = {"in_channels": 7, "n_classes": 1, "depth": 2, "wf": 2}


def _run_when_unpickled(path: str) -> str:
    """Would be called by a full unpickler; proves execution if the marker file appears."""
    Path(path).write_text("executed")
    return "executed"


class Payload:
    """A custom class whose unpickling runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_run_when_unpickled, (self.marker,))


def test_round_trip_keeps_weights_args_metadata_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = SegmentationModel(**SEG_ARGS)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 7, 8, 8)).mean().backward()
    optimizer.step()
    metadata = {"epoch": 3, "samples_seen": 1200, "metrics": {"recall": 0.8}, "config": {"lr": 1e-3, "tags": ("a", "b")}}
    path = tmp_path / "sub" / "seg.pt"
    sha = save_checkpoint(path, model, "segmentation", model_args=SEG_ARGS, metadata=metadata,
                          optimizer_state=optimizer.state_dict(), optimizer_name="Adam")
    loaded = load_checkpoint(path, expected_kind="segmentation")
    assert loaded.kind == "segmentation" and loaded.source_format == "lungcad"
    assert loaded.sha256 == sha == weights_sha256(model.state_dict())
    assert loaded.model_id == f"segmentation:{sha[:10]}" == model_weights_id(model, "segmentation")
    assert dict(loaded.model_args) == SEG_ARGS
    assert loaded.metadata["metrics"] == {"recall": 0.8} and loaded.metadata["epoch"] == 3
    assert loaded.optimizer_name == "Adam" and loaded.optimizer_state["state"]
    assert not loaded.model.training
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["seg.pt"], "no temporary file left behind"


def test_save_replaces_atomically_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "cls.pt"
    model = NoduleClassifier(conv_channels=2)
    first = save_checkpoint(path, model, "classifier", model_args={"conv_channels": 2})
    with pytest.raises(CheckpointError, match="safe"):
        save_checkpoint(path, model, "classifier", model_args={"conv_channels": 2}, metadata={"bad": object()})
    assert load_checkpoint(path).sha256 == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls.pt"]


def test_subclasses_of_plain_values_are_stored_as_plain_values(tmp_path):
    # torch.__version__ (a str subclass) and numpy.float64 (a float subclass) would be pickled as their
    # own classes, which the safe loader refuses: they are stored as str and float
    import numpy as np

    path = tmp_path / "cls.pt"
    metadata = {"torch_version": torch.__version__, "auc": np.float64(0.75), "nested": [{"n": np.float64(2.0)}]}
    save_checkpoint(path, NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2},
                    metadata=metadata)
    loaded = load_checkpoint(path)
    assert loaded.metadata["torch_version"] == str(torch.__version__)
    assert type(loaded.metadata["torch_version"]) is str and type(loaded.metadata["auc"]) is float
    assert loaded.metadata["nested"] == [{"n": 2.0}]
    with pytest.raises(CheckpointError, match="int64"):
        save_checkpoint(path, NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2},
                        metadata={"count": np.int64(3)})


def test_save_refuses_args_that_do_not_rebuild_the_model(tmp_path):
    with pytest.raises(CheckpointShapeError):
        save_checkpoint(tmp_path / "x.pt", NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 4})
    with pytest.raises(CheckpointError, match="do not fit"):
        save_checkpoint(tmp_path / "x.pt", NoduleClassifier(), "classifier", model_args={"width": 4})
    with pytest.raises(CheckpointKindError):
        save_checkpoint(tmp_path / "x.pt", NoduleClassifier(), "detector", model_args={})


def test_missing_empty_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint") as info:
        load_checkpoint(tmp_path / "nope.pt")
    assert "nope.pt" in str(info.value)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    good = tmp_path / "good.pt"
    save_checkpoint(good, NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})
    data = good.read_bytes()
    for cut in (len(data) // 2, 100):
        truncated = tmp_path / f"cut{cut}.pt"
        truncated.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated") as info:
            load_checkpoint(truncated)
        assert truncated.name in str(info.value)
    text = tmp_path / "notes.pt"
    text.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a model checkpoint"):
        load_checkpoint(other)


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"format": "lungcad-checkpoint", "model_state": {}, "extra": Payload(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match="pickled code") as info:
        load_checkpoint(path)
    assert "evil.pt" in str(info.value) and "_run_when_unpickled" in str(info.value)
    assert not marker.exists(), "the payload's code ran during loading"


def test_wrong_kind_is_refused(tmp_path):
    path = tmp_path / "seg.pt"
    save_checkpoint(path, SegmentationModel(**SEG_ARGS), "segmentation", model_args=SEG_ARGS)
    with pytest.raises(CheckpointKindError, match="holds a segmentation model, but a classifier"):
        load_checkpoint(path, expected_kind="classifier")
    cls_path = tmp_path / "cls.pt"
    save_checkpoint(cls_path, NoduleClassifier(), "classifier", model_args={})
    with pytest.raises(CheckpointKindError, match="malignancy"):
        load_checkpoint(cls_path, expected_kind="malignancy")


def test_mismatched_shapes_and_tampered_weights(tmp_path):
    path = tmp_path / "cls.pt"
    save_checkpoint(path, NoduleClassifier(), "classifier", model_args={})
    payload = torch.load(path, weights_only=True)
    payload["model_state"]["head_linear.weight"] = torch.zeros(2, 100)
    del payload["model_state"]["block1.conv1.bias"]
    torch.save(payload, path)
    with pytest.raises(CheckpointShapeError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "head_linear.weight (2, 100)" in message and "block1.conv1.bias" in message
    save_checkpoint(path, NoduleClassifier(), "classifier", model_args={})
    payload = torch.load(path, weights_only=True)
    payload["model_state"]["head_linear.bias"] += 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_book_style_state_file_with_dataparallel_prefix(tmp_path):
    torch.manual_seed(3)
    model = NoduleClassifier()
    path = tmp_path / "cls.state"
    torch.save({"model_state": {f"module.{k}": v for k, v in model.state_dict().items()},
                "model_name": "LunaModel", "epoch": 7, "totalTrainingSamples_count": 99,
                "optimizer_state": {}, "optimizer_name": "SGD"}, path)
    loaded = load_checkpoint(path, expected_kind="malignancy")
    assert loaded.kind == "malignancy" and loaded.source_format == "book"
    assert loaded.metadata["epoch"] == 7
    assert loaded.sha256 == weights_sha256(model.state_dict())
    with pytest.raises(CheckpointKindError, match="classifier model, but a segmentation"):
        load_checkpoint(path, expected_kind="segmentation")
    torch.save({"model_state": {}, "model_name": "ResNet"}, path)
    with pytest.raises(CheckpointKindError, match="ResNet"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "name, kind, n_tensors",
    [("cls_book.best.state", "classifier", 23), ("seg_book.best.state", "segmentation", 81)],
)
def test_real_book_checkpoints_import(name, kind, n_tensors, tmp_path):
    path = BOOK / name
    if not path.exists():
        pytest.skip(f"book checkpoint {path} is absent (../shared/book is not on this machine)")
    loaded = load_checkpoint(path, expected_kind=kind)
    assert loaded.source_format == "book" and len(loaded.model.state_dict()) == n_tensors
    resaved = tmp_path / "copy.pt"
    save_checkpoint(resaved, loaded.model, kind, model_args=loaded.model_args, metadata=dict(loaded.metadata))
    assert load_checkpoint(resaved).sha256 == loaded.sha256
