"""The segmentation stage: run the U-Net on the chosen slices, write uint8 probability levels.

The CT is on the compute device once, as int16. Each batch gathers its
``B × 7`` context slices (edge slices repeated) inside the lung window straight
from that tensor (:func:`engine.crops.context_slices_torch`), converts to
float32 clipped to [-1000, 1000], runs the model under the precision policy and
stores ``round(255·p)`` into the output levels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.crops import CONTEXT_SLICES, context_slices_torch
from engine.detection.lung import LungRegion
from engine.detection.result import PROBABILITY_LEVELS
from engine.detection.runtime import StageReporter, run_in_batches
from engine.devices import PrecisionPolicy


def segment_slices(
    model: nn.Module,
    volume: torch.Tensor,
    region: LungRegion,
    levels: torch.Tensor,
    *,
    policy: PrecisionPolicy,
    batch_size: int,
    reporter: StageReporter,
    notes: list[str],
    streams: int = 1,
) -> int:
    """Segment ``region`` of ``volume`` into ``levels``.

    Each batch runs on the union of its slices' windows (consecutive slices have
    similar windows).

    Args:
        model: Segmentation model (``(B, 7, H, W)`` → ``(B, 1, H, W)`` probabilities), on
            ``policy.device``, eval mode.
        volume: int16 ``(I, R, C)`` CT on ``policy.device``.
        region: Slices and window to segment.
        levels: uint8 ``(I, R, C)`` output, zero-filled, on ``policy.device`` or the CPU;
            the region's voxels are overwritten.
        policy: Device and precision.
        batch_size: Slices per forward pass to start with.
        reporter: Progress and cancellation.
        notes: Receives batch-size reductions.
        streams: CPU worker threads running batches at once
            (:func:`~engine.detection.runtime.run_in_batches`); each writes only its slices.

    Returns:
        The batch size that worked.

    Raises:
        CancelledError: between batches, when asked.
        StageOutOfMemory: one slice does not fit on the device.
    """
    device = policy.device
    slices = torch.as_tensor(region.slices, device=device)
    memory_format = torch.channels_last if policy.channels_last else torch.contiguous_format

    def step(start: int, stop: int) -> None:
        chosen = slices[start:stop]
        rows, cols = region.batch_window(start, stop)
        batch = context_slices_torch(volume, chosen, CONTEXT_SLICES, (rows, cols))
        batch = batch.contiguous(memory_format=memory_format)
        with policy.autocast():
            probability = model(batch)[:, 0]
        quantised = probability.float().mul_(PROBABILITY_LEVELS).round_().to(torch.uint8)
        target = chosen if levels.device == device else chosen.to(levels.device)
        levels[target, rows, cols] = quantised.to(levels.device)

    with torch.inference_mode():
        return run_in_batches(
            int(region.slices.size), batch_size, step, device=device, reporter=reporter, notes=notes, unit="slices",
            streams=streams,
        )


def empty_levels(shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """A zero uint8 probability-level volume on ``device``."""
    return torch.zeros(shape, dtype=torch.uint8, device=device)


def levels_to_numpy(levels: torch.Tensor) -> np.ndarray:
    """The levels as a numpy array on the host (no copy for a CPU tensor)."""
    return levels.cpu().numpy()
