"""The segmentation model the detector runs: ``BatchNorm2d(in) → UNet → sigmoid`` (SPEC §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.unet import UNet


class SegmentationModel(nn.Module):
    """Per-pixel nodule probability of a CT slice given its neighbours.

    Normalises the raw input with a learned ``BatchNorm2d``, runs a padded
    :class:`~engine.models.unet.UNet` and applies a sigmoid. Any height and
    width are accepted: the input is padded (replicating its edge) up to a
    multiple of ``2**(depth-1)`` and the output cropped back. The state-dict
    names match the book's ``UNetWrapper`` (``input_batchnorm``, ``unet.*``).

    Args:
        in_channels: Context channels per sample (7: the slice ± 3 neighbours).
        n_classes: Output channels (1: nodule probability).
        depth: U-Net levels.
        wf: log2 of the first level's filters.
        padding: Must be True: the output keeps the input's size.
        batch_norm: BatchNorm2d inside the U-Net blocks.
        up_mode: ``"upconv"`` or ``"upsample"``.
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
        if not padding:
            raise ValueError("SegmentationModel needs padding=True so the output matches the input size")
        self.input_batchnorm = nn.BatchNorm2d(in_channels)
        self.unet = UNet(in_channels, n_classes, depth, wf, padding, batch_norm, up_mode)
        self.final = nn.Sigmoid()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_in, relu) convolution weights, small uniform biases."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    fan_out = module.weight.shape[0] * module.weight.shape[2] * module.weight.shape[3]
                    bound = 1.0 / fan_out**0.5
                    nn.init.uniform_(module.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch of context stacks.

        Args:
            x: ``(N, in_channels, H, W)`` float, HU clipped to [-1000, 1000]; the
                middle channel is the slice being segmented.

        Returns:
            ``(N, n_classes, H, W)`` probabilities in [0, 1].
        """
        height, width = x.shape[-2:]
        multiple = self.unet.size_multiple
        pad_h = -height % multiple
        pad_w = -width % multiple
        x = self.input_batchnorm(x)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.final(self.unet(x))
        if pad_h or pad_w:
            out = out[..., :height, :width]
        return out
