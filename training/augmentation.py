"""Data augmentation on the training device: random affine warps and noise (SPEC §3).

Each sample gets its own affine matrix (mirror each axis with p = 0.5, shift,
scale, rotation in the row/col plane) applied with ``affine_grid`` /
``grid_sample`` (bilinear, border padding), then additive Gaussian noise in HU.
Augmentation runs after the crop cache, on whole batches, on the device that
trains. Matrices act on ``affine_grid``'s normalised coordinates, whose last
axis is ordered (col, row, index) = (x, y, z); with ``align_corners=False`` a
mirror maps voxel ``k`` exactly to ``size - 1 - k``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations are on, with their magnitudes.

    Args:
        flip: Mirror each spatial axis with probability 0.5.
        offset: Largest shift, as a fraction of the half-extent (grid units); 0 = off.
        scale: Scale by ``1 + scale·U(-1, 1)`` per axis; 0 = off.
        rotate: Rotate by ``U(0, 2π)`` in the row/col plane.
        noise: Standard deviation of additive Gaussian noise, HU; 0 = off.
    """

    flip: bool = False
    offset: float = 0.0
    scale: float = 0.0
    rotate: bool = False
    noise: float = 0.0

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return self.flip or self.rotate or self.offset > 0 or self.scale > 0 or self.noise > 0

    @property
    def warps(self) -> bool:
        """Whether any geometric augmentation is on (noise alone needs no resampling)."""
        return self.flip or self.rotate or self.offset > 0 or self.scale > 0

    def to_dict(self) -> dict[str, float | bool]:
        """JSON-ready settings."""
        return asdict(self)


#: The book's classifier settings (``--augmented``).
CLASSIFIER_AUGMENTATION = AugmentConfig(flip=True, offset=0.1, scale=0.2, rotate=True, noise=25.0)
#: The book's segmentation settings (``--augmented``).
SEGMENTATION_AUGMENTATION = AugmentConfig(flip=True, offset=0.03, scale=0.2, rotate=True, noise=25.0)
NO_AUGMENTATION = AugmentConfig()


def _uniform(n: int, generator: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    return torch.rand((n, *shape), generator=generator, device=device)


def affine_matrices(
    n: int, spatial_dims: int, config: AugmentConfig, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Random per-sample affine matrices for ``affine_grid``.

    Args:
        n: Number of samples.
        spatial_dims: 2 (row, col) or 3 (index, row, col).
        config: Which augmentations, with magnitudes.
        generator: Random source (on ``device``).
        device: Where the matrices live.

    Returns:
        ``(n, d, d + 1)`` float32 matrices; the first two grid axes (col, row)
        are the ones rotated.
    """
    d = spatial_dims
    device = torch.device(device)
    diag = torch.ones((n, d), device=device)
    if config.flip:
        diag = torch.where(_uniform(n, generator, device, d) < 0.5, -diag, diag)
    if config.scale > 0:
        diag = diag * (1.0 + config.scale * (2.0 * _uniform(n, generator, device, d) - 1.0))
    linear = torch.diag_embed(diag)
    if config.rotate:
        angle = 2.0 * math.pi * _uniform(n, generator, device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.eye(d, device=device).repeat(n, 1, 1)
        rotation[:, 0, 0], rotation[:, 0, 1] = cos, -sin
        rotation[:, 1, 0], rotation[:, 1, 1] = sin, cos
        linear = linear @ rotation
    shift = torch.zeros((n, d, 1), device=device)
    if config.offset > 0:
        shift = config.offset * (2.0 * _uniform(n, generator, device, d, 1) - 1.0)
    return torch.cat([linear, shift], dim=2)


def warp(images: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample a batch through per-sample affine matrices (border padding).

    Args:
        images: ``(N, C, *spatial)`` float tensor, 2 or 3 spatial axes.
        theta: ``(N, d, d + 1)`` matrices from :func:`affine_matrices`.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        The warped batch, same shape and dtype as ``images``.
    """
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False)


def add_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` (same units as the images, HU)."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + sigma * noise


def augment_volumes(volumes: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch of 3D crops (the classifiers' augmentation).

    Args:
        volumes: ``(N, C, I, R, C)`` float HU crops on the training device.
        config: Which augmentations.
        generator: Random source on the same device.

    Returns:
        The augmented batch (a new tensor; the input is untouched).
    """
    if config.warps:
        theta = affine_matrices(volumes.shape[0], 3, config, generator, volumes.device)
        volumes = warp(volumes, theta)
    if config.noise > 0:
        volumes = add_noise(volumes, config.noise, generator)
    return volumes


class SegmentationAugmentation(nn.Module):
    """Warp 2D context stacks and their labels with the same random grid (SPEC §3).

    Runs on the training device as part of the training step; the label is
    resampled bilinearly and re-binarised at 0.5, and noise goes to the image
    only.

    Args:
        config: Which augmentations, with magnitudes.
        generator: Random source on the training device (seeded per epoch and rank).
    """

    def __init__(self, config: AugmentConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.config = config
        self.generator = generator

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one batch.

        Args:
            image: ``(N, 7, H, W)`` float HU context stacks.
            label: ``(N, 1, H, W)`` bool or float nodule mask.

        Returns:
            ``(image (N, 7, H, W) float, label (N, 1, H, W) bool)``.
        """
        if self.config.warps:
            theta = affine_matrices(image.shape[0], 2, self.config, self.generator, image.device)
            image = warp(image, theta)
            label = warp(label.to(image.dtype), theta) > 0.5
        else:
            label = label > 0.5 if label.dtype != torch.bool else label
        if self.config.noise > 0:
            image = add_noise(image, self.config.noise, self.generator)
        return image, label


def random_crops_2d(
    image: torch.Tensor, label: torch.Tensor, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a random ``size × size`` window from each sample (the 96 → 64 sub-crop).

    Args:
        image: ``(N, C, H, W)`` tensor with ``H, W >= size``.
        label: ``(N, 1, H, W)`` tensor aligned with ``image``.
        size: Side of the window, pixels.
        generator: Random source on the same device.

    Returns:
        ``(image (N, C, size, size), label (N, 1, size, size))``, the same
        window for an image and its label.
    """
    n, _, height, width = image.shape
    device = image.device
    top = torch.randint(0, height - size + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, width - size + 1, (n,), generator=generator, device=device)
    span = torch.arange(size, device=device)
    rows = (top[:, None] + span)[:, :, None]  # (N, size, 1)
    cols = (left[:, None] + span)[:, None, :]  # (N, 1, size)
    batch = torch.arange(n, device=device)[:, None, None]

    def cut(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()

    return cut(image), cut(label)
