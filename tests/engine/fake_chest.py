"""Small synthetic chests and tiny deterministic models for detection tests."""

from __future__ import annotations

import numpy as np
import torch

from engine.io.volume import CtVolume
from engine.geometry import Geometry
from engine.models import NoduleClassifier, SegmentationModel

#: Default nodules: (index, row, col) centre and radius in voxels.
NODULES = (((8, 20, 20), 3.0), ((14, 40, 44), 4.0), ((5, 44, 12), 2.5))


def lung_block(
    shape: tuple[int, int, int] = (20, 64, 64),
    nodules=NODULES,
    spacing_xyz: tuple[float, float, float] = (0.8, 0.8, 1.5),
    seed: int = 0,
    noise: float = 10.0,
) -> CtVolume:
    """A volume of lung (-850 HU) holding solid spheres (+40 HU): every slice has lung."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -850.0, dtype=np.float32)
    grid = np.indices(shape, dtype=np.float32)
    for centre, radius in nodules:
        inside = sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius**2
        hu[inside] = 40.0
    hu += rng.normal(0.0, noise, shape).astype(np.float32)
    return CtVolume(
        hu=np.rint(hu).astype(np.int16),
        geometry=Geometry((-30.0, -20.0, -100.0), spacing_xyz, (1, 0, 0, 0, 1, 0, 0, 0, 1)),
        series_uid="1.2.826.0.1.3680043.2.1125.9.1",
    )


def small_chest(shape: tuple[int, int, int] = (30, 96, 112), seed: int = 0) -> CtVolume:
    """Air, an elliptical body (40 HU) and two lungs (-850 HU) on slices 6..23, with noise σ 20."""
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    i, r, c = np.indices(shape, dtype=np.float32)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((r - height / 2) / (0.42 * height)) ** 2 + ((c - width / 2) / (0.45 * width)) ** 2 <= 1
    hu[body] = 40.0
    for centre_c in (0.3 * width, 0.7 * width):
        lung = ((r - height / 2) / (0.25 * height)) ** 2 + ((c - centre_c) / (0.13 * width)) ** 2 <= 1
        hu[lung & (i >= 6) & (i <= 23)] = -850.0
    hu += rng.normal(0.0, 20.0, shape).astype(np.float32)
    return CtVolume(
        hu=np.rint(hu).astype(np.int16),
        geometry=Geometry((-50.0, -40.0, -200.0), (0.8, 0.8, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
        series_uid="small-chest",
    )


class DenseTissueSegmentation(SegmentationModel):
    """A stand-in segmentation model: p = sigmoid((HU of the centre slice + 300) / 25)."""

    def __init__(self) -> None:
        super().__init__(depth=1, wf=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x.shape[1] // 2
        return torch.sigmoid((x[:, centre : centre + 1].float() + 300.0) / 25.0)


def tiny_classifier(seed: int) -> NoduleClassifier:
    """A randomly initialised narrow classifier (fast), with its batch norm set to sensible HU statistics."""
    torch.manual_seed(seed)
    model = NoduleClassifier(conv_channels=2)
    with torch.no_grad():
        model.tail_batchnorm.running_mean.fill_(-500.0)
        model.tail_batchnorm.running_var.fill_(400.0**2)
    return model.eval()


def tiny_segmentation(seed: int) -> SegmentationModel:
    """A randomly initialised small U-Net (depth 2, 4/8 filters)."""
    torch.manual_seed(seed)
    model = SegmentationModel(depth=2, wf=2)
    with torch.no_grad():
        model.input_batchnorm.running_mean.fill_(-500.0)
        model.input_batchnorm.running_var.fill_(400.0**2)
    return model.eval()
