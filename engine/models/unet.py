"""A 2D U-Net (SPEC §2): ``Conv → ReLU → BatchNorm`` twice per level, average-pool down,
transposed-convolution up, concatenated skip connections, 1×1 head.

Module names follow the book's U-Net (``down_path``, ``up_path``, ``last``), so
book checkpoints load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UNetConvBlock(nn.Sequential):
    """Two ``Conv2d(k3) → ReLU → [BatchNorm2d]`` steps, kept in ``self.block``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of both convolutions' outputs.
        padding: Pad the 3×3 convolutions so the output keeps the input's size.
        batch_norm: Add a BatchNorm2d after each ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: bool, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for step_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(step_in, out_channels, kernel_size=3, padding=int(padding)))
            layers.append(nn.ReLU(inplace=True))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` → ``(N, C_out, H', W')`` (H' = H with padding, else H - 4)."""
        return self.block(x)


class UNetUpBlock(nn.Module):
    """Upsample by 2, concatenate the (centre-cropped) skip, then a :class:`UNetConvBlock`.

    Args:
        in_channels: Channels coming up from the level below.
        out_channels: Channels after upsampling and of the block's output; the
            skip connection brings as many.
        up_mode: ``"upconv"`` (ConvTranspose2d k2 s2) or ``"upsample"`` (bilinear
            ×2 then a 1×1 convolution).
        padding: As for :class:`UNetConvBlock`.
        batch_norm: As for :class:`UNetConvBlock`.
    """

    def __init__(self, in_channels: int, out_channels: int, up_mode: str, padding: bool, batch_norm: bool) -> None:
        super().__init__()
        if up_mode == "upconv":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        elif up_mode == "upsample":
            self.up = nn.Sequential(
                nn.Upsample(mode="bilinear", scale_factor=2, align_corners=False),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )
        else:
            raise ValueError(f"up_mode must be 'upconv' or 'upsample', got {up_mode!r}")
        self.conv_block = UNetConvBlock(in_channels, out_channels, padding, batch_norm)

    def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
        """``x (N, C_in, h, w)``, ``bridge (N, C_out, H, W)`` with ``H >= 2h`` → ``(N, C_out, 2h', 2w')``."""
        up = self.up(x)
        height, width = up.shape[-2:]
        top = (bridge.shape[-2] - height) // 2
        left = (bridge.shape[-1] - width) // 2
        bridge = bridge[..., top : top + height, left : left + width]
        return self.conv_block(torch.cat([up, bridge], dim=1))


class UNet(nn.Module):
    """2D U-Net with ``depth`` levels of ``2**(wf + level)`` filters.

    Args:
        in_channels: Input channels (7: a slice and three neighbours each side).
        n_classes: Output channels of the 1×1 head (logits, no activation).
        depth: Number of levels; the input is pooled ``depth - 1`` times, so with
            ``padding=True`` height and width must be multiples of ``2**(depth-1)``.
        wf: log2 of the filters at the first level (4 → 16/32/64 for depth 3).
        padding: Pad convolutions so the output has the input's size.
        batch_norm: BatchNorm2d after each ReLU.
        up_mode: ``"upconv"`` or ``"upsample"`` (see :class:`UNetUpBlock`).
    """

    def __init__(
        self,
        in_channels: int = 7,
        n_classes: int = 1,
        depth: int = 3,
        wf: int = 4,
        padding: bool = True,
        batch_norm: bool = True,
        up_mode: str = "upconv",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self.padding = padding
        channels = in_channels
        self.down_path = nn.ModuleList()
        for level in range(depth):
            self.down_path.append(UNetConvBlock(channels, 2 ** (wf + level), padding, batch_norm))
            channels = 2 ** (wf + level)
        self.up_path = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            self.up_path.append(UNetUpBlock(channels, 2 ** (wf + level), up_mode, padding, batch_norm))
            channels = 2 ** (wf + level)
        self.last = nn.Conv2d(channels, n_classes, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Height and width of a padded input must be multiples of this."""
        return 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` → logits ``(N, n_classes, H, W)`` (with padding)."""
        skips = []
        for level, down in enumerate(self.down_path):
            x = down(x)
            if level != self.depth - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)
