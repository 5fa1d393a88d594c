"""Fixtures of the deployment tests: tiny checkpoints (fast to export) and a small phantom CT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.checkpoints import save_checkpoint
from engine.models.classifier import NoduleClassifier
from engine.models.segmentation import SegmentationModel

TINY_ARGS = {
    "segmentation": {"depth": 2, "wf": 1},
    "classifier": {"conv_channels": 2},
    "malignancy": {"conv_channels": 2},
}


def _tiny_model(kind: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    cls = SegmentationModel if kind == "segmentation" else NoduleClassifier
    model = cls(**TINY_ARGS[kind]).eval()
    norm = model.input_batchnorm if kind == "segmentation" else model.tail_batchnorm
    with torch.no_grad():  # HU-scale input statistics, as a trained model has; the exports must carry them
        norm.running_mean.uniform_(-600, -200)
        norm.running_var.uniform_(1e5, 3e5)
    return model


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of tiny models of the three kinds (seeded)."""
    folder = tmp_path_factory.mktemp("tiny-checkpoints")
    paths = {}
    for seed, kind in enumerate(TINY_ARGS):
        paths[kind] = folder / f"{kind}.pt"
        save_checkpoint(paths[kind], _tiny_model(kind, seed), kind, model_args=TINY_ARGS[kind])
    return paths
