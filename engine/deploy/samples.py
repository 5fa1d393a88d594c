"""Real model inputs cut from phantom CTs, for the export checks and int8 calibration.

Crops and context stacks are made exactly as the pipeline makes them
(:mod:`engine.crops`): positives at the phantom's nodule centres, negatives at
its non-nodule candidate locations (vessels, bifurcations, pleura, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from engine.crops import CLASSIFIER_CROP, classifier_input, context_slices, gather_crops
from engine.geometry import xyz_to_irc_continuous


@dataclass(frozen=True)
class CropSet:
    """Classifier inputs with their phantom labels.

    Args:
        crops: float32 ``(N, 1, 32, 48, 48)``, HU clipped to [-1000, 1000].
        is_nodule: bool ``(N,)``: centred on a reference nodule.
        is_malignant: bool ``(N,)``: centred on a malignant nodule.
        seeds: The phantom seeds the crops come from.
    """

    crops: np.ndarray
    is_nodule: np.ndarray
    is_malignant: np.ndarray
    seeds: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.crops.shape[0])


def phantom_crops(
    seeds: Sequence[int],
    *,
    negatives_per_series: int = 24,
    nodules_per_series: int = 6,
    preset: str = "small",
) -> CropSet:
    """Crops from phantom series: every nodule, and evenly chosen negative candidates.

    Args:
        seeds: Phantom seeds (:func:`engine.phantom.generate_series`).
        negatives_per_series: Non-nodule candidates taken per series (evenly spaced in its list).
        nodules_per_series: Nodules each series is generated with.
        preset: Phantom preset (``"small"``: 160×160×64, about a second each).

    Returns:
        The crops, nodules first within each series.
    """
    from engine.phantom import generate_series

    crops, nodule, malignant = [], [], []
    for seed in seeds:
        ct, truth = generate_series(int(seed), preset=preset, n_nodules=nodules_per_series)
        centres = [np.asarray(n.center_irc, dtype=np.float64) for n in truth.nodules]
        flags = [bool(n.is_malignant) for n in truth.nodules]
        negatives = [c for c in truth.candidates if c.label == 0]
        if negatives:
            chosen = np.linspace(0, len(negatives) - 1, min(negatives_per_series, len(negatives))).round().astype(int)
            xyz = np.asarray([negatives[i].center_xyz for i in chosen], dtype=np.float64)
            centres.extend(xyz_to_irc_continuous(ct.geometry, xyz))
        n_pos = len(truth.nodules)
        raw = gather_crops(ct.hu, np.asarray(centres).reshape(-1, 3), CLASSIFIER_CROP)
        crops.append(classifier_input(torch.from_numpy(raw)).numpy())
        nodule.extend([True] * n_pos + [False] * (len(centres) - n_pos))
        malignant.extend(flags + [False] * (len(centres) - n_pos))
    return CropSet(
        crops=np.ascontiguousarray(np.concatenate(crops)),
        is_nodule=np.asarray(nodule, dtype=bool),
        is_malignant=np.asarray(malignant, dtype=bool),
        seeds=tuple(int(s) for s in seeds),
    )


def phantom_slices(seed: int, count: int = 3, preset: str = "small") -> list[np.ndarray]:
    """Segmentation inputs from one phantom: full slices and one odd-sized window.

    Args:
        seed: Phantom seed.
        count: Full slices (evenly spread through the volume) in the first batch.
        preset: Phantom preset.

    Returns:
        Two float32 batches ``(B, 7, H, W)``: ``count`` full slices, and two
        slices cut to an in-plane window whose sides are not multiples of 4 (so
        the padding path of every format is exercised).
    """
    from engine.phantom import generate_series

    ct, _ = generate_series(int(seed), preset=preset)
    depth, rows, cols = ct.shape
    picks = np.linspace(depth * 0.2, depth * 0.8, count).round().astype(np.int64)
    full = context_slices(ct.hu, picks)
    window = (slice(rows // 8, rows // 8 + (rows * 3) // 4 - 1), slice(cols // 10, cols // 10 + (cols * 3) // 4 + 1))
    odd = context_slices(ct.hu, picks[:2], roi=window)
    return [np.ascontiguousarray(full), np.ascontiguousarray(odd)]
