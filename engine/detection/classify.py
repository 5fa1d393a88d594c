"""The classification stages: crops around candidates → nodule and malignancy probabilities.

Crops are cut in batches from the CT already on the device
(:func:`engine.crops.gather_crops_torch`, edge-shifted and padded as SPEC §1.3).
The malignancy model is fine-tuned from the nodule classifier with its early
layers frozen, so the two usually share a *trunk* of identical leading layers;
it is then computed once and its output reused (bit-identical to running the
malignancy model alone).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.crops import CLASSIFIER_CROP, classifier_input, gather_crops_torch
from engine.detection.runtime import StageReporter, run_in_batches
from engine.devices import PrecisionPolicy
from engine.models.classifier import NoduleClassifier

#: Shared features are kept between the two stages when a crop's features have
#: at most this many values (after block 2 or later); otherwise they are recomputed.
KEEP_FEATURES_MAX = 20_000


def shared_trunk_depth(first: NoduleClassifier, second: NoduleClassifier) -> int:
    """How many leading trunk stages (:attr:`NoduleClassifier.TRUNK`) hold identical weights.

    Returns:
        0 .. ``len(TRUNK)``.
    """
    depth = 0
    for name in NoduleClassifier.TRUNK:
        a = getattr(first, name).state_dict()
        b = getattr(second, name).state_dict()
        if a.keys() != b.keys() or not all(
            a[k].shape == b[k].shape and torch.equal(a[k], b[k].to(a[k].device)) for k in a
        ):
            break
        depth += 1
    return depth


def classify_crops(
    model: NoduleClassifier,
    volume: torch.Tensor,
    starts: np.ndarray,
    *,
    policy: PrecisionPolicy,
    batch_size: int,
    reporter: StageReporter,
    notes: list[str],
    trunk_model: NoduleClassifier | None = None,
    shared_depth: int = 0,
    shared_features: torch.Tensor | None = None,
    keep_features: list[torch.Tensor] | None = None,
    streams: int = 1,
) -> np.ndarray:
    """Positive-class probability of ``model`` for the crops starting at ``starts``.

    Args:
        model: The classifier, on ``policy.device``, eval mode.
        volume: int16 ``(I, R, C)`` CT on ``policy.device``.
        starts: int64 ``(N, 3)`` crop starts (:func:`engine.crops.crop_starts`).
        policy: Device and precision.
        batch_size: Crops per forward pass to start with.
        reporter: Progress and cancellation.
        notes: Receives batch-size reductions.
        trunk_model: Computes the first ``shared_depth`` trunk stages (whose
            weights equal ``model``'s); default ``model``.
        shared_depth: Number of leading trunk stages taken from ``trunk_model``
            or from ``shared_features``.
        shared_features: ``(N, ...)`` output of those stages from an earlier call;
            when given, no crops are cut.
        keep_features: When a list, receives the shared-stage outputs of each
            batch in order (``torch.cat`` them for ``shared_features``).
        streams: CPU worker threads running batches at once
            (:func:`~engine.detection.runtime.run_in_batches`).

    Returns:
        float64 ``(N,)`` probabilities of class 1.
    """
    device = policy.device
    n = int(starts.shape[0])
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    starts_t = torch.as_tensor(starts, dtype=torch.int64, device=device)
    memory_format = torch.channels_last_3d if policy.channels_last else torch.contiguous_format
    trunk_model = model if trunk_model is None else trunk_model
    n_stages = len(NoduleClassifier.TRUNK)

    def step(start: int, stop: int) -> None:
        with policy.autocast():
            if shared_features is not None:
                x = shared_features[start:stop]
            else:
                crops = gather_crops_torch(volume, starts_t[start:stop], CLASSIFIER_CROP)
                x = classifier_input(crops).contiguous(memory_format=memory_format)
                x = trunk_model.trunk(x, 0, shared_depth)
            logits = model.head(model.trunk(x, shared_depth, n_stages))[0]
        probability = torch.softmax(logits.float(), dim=1)[:, 1]
        out[start:stop] = probability.cpu().numpy()
        if keep_features is not None:
            kept[start] = x  # batches may finish out of order (streams); put in order below

    kept: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        if keep_features is not None:
            keep_features.clear()
        run_in_batches(
            n, batch_size, step, device=device, reporter=reporter, notes=notes, unit="candidates", streams=streams
        )
    if keep_features is not None:
        keep_features.extend(kept[start] for start in sorted(kept))
    return out


def feature_size(model: NoduleClassifier, depth: int) -> int:
    """Values per crop after the first ``depth`` stages of :attr:`NoduleClassifier.TRUNK`."""
    if depth <= 1:
        return model.in_channels * int(np.prod(CLASSIFIER_CROP))
    blocks = depth - 1
    channels = model.conv_channels * 2 ** (blocks - 1)
    return channels * int(np.prod([s // 2**blocks for s in CLASSIFIER_CROP]))
