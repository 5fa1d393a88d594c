"""The 3D nodule classifier (SPEC §2), also the malignancy classifier's architecture."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.lesion_shape import INPUT_NAMES as SHAPE_INPUTS

#: Crop size the classifier is built for, in voxels (index, row, col).
CROP_SHAPE: tuple[int, int, int] = (32, 48, 48)


class ConvBlock3d(nn.Module):
    """``Conv3d(k3,p1) → ReLU → Conv3d(k3,p1) → ReLU → MaxPool3d(2)``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of both convolutions' outputs.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.relu2 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, D, H, W)`` → ``(N, C_out, D/2, H/2, W/2)``."""
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.maxpool(x)


class NoduleClassifier(nn.Module):
    """Two-class 3D CNN on a ``(32, 48, 48)`` CT crop (nodule vs not, or malignant vs benign).

    ``BatchNorm3d(in) → 4 × ConvBlock3d (c, 2c, 4c, 8c channels) → flatten →
    Linear(8c·2·3·3, 2)``; returns the logits and their softmax. With the
    defaults it has 222,220 parameters and the state-dict names of the book's
    ``LunaModel`` (``tail_batchnorm``, ``block{1..4}.conv{1,2}``, ``head_linear``),
    so book checkpoints load without renaming.

    Args:
        in_channels: Input channels (1: HU clipped to [-1000, 1000]).
        conv_channels: Channels of the first block; each block doubles them.
        size_head: Add :attr:`size_head`, a ``Linear(2, 1)`` over ``(logit of
            the CNN's class-1 probability, ln diameter in mm)`` that gives a
            size-aware logit (:mod:`engine.lesion_size`; malignancy models).
            It starts as the identity on the CNN's logit. ``forward`` stays the
            CNN alone (the crop cannot tell the size in mm); callers apply
            :meth:`size_coefficients`.
        shape_head: Add :attr:`shape_head`, a ``Linear(k, 1)`` over the
            :data:`engine.lesion_shape.INPUT_NAMES` (the CNN's logit, Hessian
            shape features of the crop and the size of the candidate's segmented
            region) that gives a shape-aware logit (nodule classifiers). It
            starts as the identity on the CNN's logit; ``forward`` stays the CNN
            alone; callers apply :meth:`shape_coefficients`.
    """

    #: Children applied in order before the head; a fine-tuned copy often shares a prefix of them.
    TRUNK: tuple[str, ...] = ("tail_batchnorm", "block1", "block2", "block3", "block4")

    def __init__(
        self, in_channels: int = 1, conv_channels: int = 8, size_head: bool = False, shape_head: bool = False
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv_channels = conv_channels
        c = conv_channels
        self.tail_batchnorm = nn.BatchNorm3d(in_channels)
        self.block1 = ConvBlock3d(in_channels, c)
        self.block2 = ConvBlock3d(c, 2 * c)
        self.block3 = ConvBlock3d(2 * c, 4 * c)
        self.block4 = ConvBlock3d(4 * c, 8 * c)
        pooled = [s // 16 for s in CROP_SHAPE]  # four 2× max-pools
        self.head_linear = nn.Linear(8 * c * math.prod(pooled), 2)
        self.head_softmax = nn.Softmax(dim=1)
        self.size_head: nn.Linear | None = nn.Linear(2, 1) if size_head else None
        self.shape_head: nn.Linear | None = nn.Linear(len(SHAPE_INPUTS), 1) if shape_head else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out, relu) weights; biases uniform in ±1/sqrt(fan_out)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    fan_out = module.weight.shape[0] * math.prod(module.weight.shape[2:])
                    bound = 1.0 / math.sqrt(fan_out)
                    nn.init.uniform_(module.bias, -bound, bound)
        if self.size_head is not None:
            with torch.no_grad():
                self.size_head.weight.copy_(torch.tensor([[1.0, 0.0]]))
                self.size_head.bias.zero_()
        if self.shape_head is not None:
            with torch.no_grad():
                self.shape_head.weight.zero_()
                self.shape_head.weight[0, 0] = 1.0
                self.shape_head.bias.zero_()

    def size_coefficients(self) -> tuple[float, float, float] | None:
        """``(a, b, c)`` of :func:`engine.lesion_size.size_aware_probability`, or None without a size head."""
        if self.size_head is None:
            return None
        w = self.size_head.weight.detach().double().cpu().reshape(-1)
        return float(w[0]), float(w[1]), float(self.size_head.bias.detach().double().cpu().reshape(-1)[0])

    def shape_coefficients(self) -> tuple[float, ...] | None:
        """``(*w, c)`` of :func:`engine.lesion_shape.shape_aware_probability`, or None without a shape head."""
        if self.shape_head is None:
            return None
        w = self.shape_head.weight.detach().double().cpu().reshape(-1).tolist()
        return (*w, float(self.shape_head.bias.detach().double().cpu().reshape(-1)[0]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify a batch of crops.

        Args:
            x: ``(N, in_channels, 32, 48, 48)`` float crops, HU clipped to [-1000, 1000].

        Returns:
            ``(logits, probabilities)``, both ``(N, 2)``; column 1 is the positive
            class (nodule, or malignant).
        """
        return self.head(self.trunk(x))

    def trunk(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Apply trunk stages ``start .. stop-1`` (indices into :attr:`TRUNK`).

        Args:
            x: The output of stage ``start - 1`` (the crops when ``start == 0``).
            start: First stage to apply.
            stop: One past the last stage (default: all).

        Returns:
            The features after stage ``stop - 1``: ``(N, 8c, 2, 3, 3)`` after the whole trunk.
        """
        for name in self.TRUNK[start:stop]:
            x = getattr(self, name)(x)
        return x

    def head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk features ``(N, 8c, 2, 3, 3)`` → ``(logits, probabilities)``, both ``(N, 2)``."""
        logits = self.head_linear(features.flatten(1))
        return logits, self.head_softmax(logits)
