"""A book-style detection pipeline, for measuring ours against it (``python main.py bench --compare-book``).

Written from the description in SPEC §4 of the reference pipeline (the
book's chapter 14 ``nodule_analysis``), not from its code, and kept as plain
as that description: every slice is segmented in full, four slices per batch,
in float32; the probability volume comes back to the host as float32;
thresholding, the 3D-cross erosion, labelling and the HU-weighted centres of
mass are scipy's ``ndimage`` calls; each candidate's ``(32, 48, 48)`` crop is
cut on the host one at a time and classified four per batch, the nodule and
the malignancy model on the same batch.

It runs the same model objects as our :class:`~engine.detection.Detector`, so
the ratio of the two is the pipeline's, not the weights'. It applies the
malignancy model's size head as the detector does, but not the nodule
classifier's shape head (the book's grouping gives centres, not the region
sizes the head needs): its ``p_nodule`` is the CNN's. It is not used for
detection anywhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from engine.io.volume import CtVolume
from engine.lesion_size import size_aware_at

#: Slices per segmentation batch and crops per classification batch, as in the book.
BOOK_BATCH = 4
#: Context slices on each side of the segmented one (SPEC §1.3: 7 channels).
CONTEXT = 3
#: Classifier crop (index, row, col) voxels (SPEC §1.3).
CROP = (32, 48, 48)


@dataclass(frozen=True)
class BookStyleResult:
    """What the book-style pipeline found, and how long each stage took.

    Args:
        centers_irc: ``(N, 3)`` float64 candidate centres (index, row, col).
        p_nodule: ``(N,)`` nodule probabilities.
        p_malignant: ``(N,)`` malignancy probabilities.
        timings: Seconds per stage (``segmentation``, ``grouping``,
            ``classification``, which includes malignancy as the book runs both
            on one batch, and ``total``).
    """

    centers_irc: np.ndarray
    p_nodule: np.ndarray
    p_malignant: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def _context_stack(hu: np.ndarray, index: int) -> np.ndarray:
    """``(7, rows, cols)`` float32 slices around ``index`` (edges repeated), HU clipped to [-1000, 1000]."""
    depth = hu.shape[0]
    picks = [min(max(index + offset, 0), depth - 1) for offset in range(-CONTEXT, CONTEXT + 1)]
    stack = hu[picks].astype(np.float32)
    np.clip(stack, -1000, 1000, out=stack)
    return stack


def segment_book_style(ct: CtVolume, segmentation: nn.Module, device: torch.device) -> np.ndarray:
    """Probability volume ``(index, row, col)`` float32: every slice in full, :data:`BOOK_BATCH` per batch."""
    hu = ct.hu
    out = np.zeros(hu.shape, dtype=np.float32)
    with torch.no_grad():
        for first in range(0, hu.shape[0], BOOK_BATCH):
            indices = list(range(first, min(first + BOOK_BATCH, hu.shape[0])))
            batch = torch.from_numpy(np.stack([_context_stack(hu, i) for i in indices])).to(device)
            prob = segmentation(batch)
            out[indices] = prob[:, 0].float().cpu().numpy()
    return out


def group_book_style(ct: CtVolume, probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Candidate centres ``(N, 3)`` irc: threshold, one 3D-cross erosion, labels, HU-weighted centres of mass."""
    mask = probability > threshold
    mask = ndimage.binary_erosion(mask, iterations=1)
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros((0, 3))
    weights = np.clip(ct.hu, -1000, 1000).astype(np.float32) + 1001
    centers = ndimage.center_of_mass(weights, labels=labels, index=np.arange(1, count + 1))
    return np.asarray(centers, dtype=np.float64).reshape(-1, 3)


def _crop(hu: np.ndarray, center_irc: np.ndarray) -> np.ndarray:
    """One ``(32, 48, 48)`` crop around ``center_irc`` (SPEC §1.3: shifted back inside, -1000 HU padding)."""
    out = np.full(CROP, -1000, dtype=np.float32)
    source = []
    target = []
    for axis, width in enumerate(CROP):
        size = hu.shape[axis]
        start = int(np.floor(float(center_irc[axis]) - width / 2 + 0.5))  # round half up
        start = min(max(start, min(0, size - width)), max(0, size - width))
        lo, hi = max(start, 0), min(start + width, size)
        source.append(slice(lo, hi))
        target.append(slice(lo - start, hi - start))
    out[tuple(target)] = hu[tuple(source)]
    np.clip(out, -1000, 1000, out=out)
    return out


def classify_book_style(
    ct: CtVolume, centers_irc: np.ndarray, classifier: nn.Module, malignancy: nn.Module, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``p_nodule`` and ``p_malignant`` per centre: crops cut one at a time, :data:`BOOK_BATCH` per batch."""
    p_nodule = np.zeros(len(centers_irc))
    p_malignant = np.zeros(len(centers_irc))
    with torch.no_grad():
        for first in range(0, len(centers_irc), BOOK_BATCH):
            chunk = centers_irc[first : first + BOOK_BATCH]
            batch = torch.from_numpy(np.stack([_crop(ct.hu, c) for c in chunk])[:, None]).to(device)
            _, prob = classifier(batch)
            _, prob_mal = malignancy(batch)
            p_nodule[first : first + len(chunk)] = prob[:, 1].float().cpu().numpy()
            p_malignant[first : first + len(chunk)] = prob_mal[:, 1].float().cpu().numpy()
    coefficients = getattr(malignancy, "size_coefficients", lambda: None)()  # the size head, as the detector applies it
    return p_nodule, size_aware_at(coefficients, p_malignant, ct.hu, ct.geometry.spacing_irc, centers_irc)


def detect_book_style(
    ct: CtVolume,
    segmentation: nn.Module,
    classifier: nn.Module,
    malignancy: nn.Module,
    device: str | torch.device = "cpu",
    seg_threshold: float = 0.5,
) -> BookStyleResult:
    """Run the book-style pipeline on one CT and time its stages.

    Args:
        ct: The CT.
        segmentation: A :class:`~engine.models.segmentation.SegmentationModel` (7 channels in, probability out).
        classifier: The nodule classifier (``(N, 1, 32, 48, 48)`` → logits, probabilities).
        malignancy: The malignancy classifier (same form).
        device: Where the models run.
        seg_threshold: Segmentation probability threshold.

    Returns:
        The candidates and the seconds per stage.
    """
    device = torch.device(device)
    models = [model.eval().to(device) for model in (segmentation, classifier, malignancy)]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    probability = segment_book_style(ct, models[0], device)
    timings["segmentation"] = time.perf_counter() - start
    mark = time.perf_counter()
    centers = group_book_style(ct, probability, seg_threshold)
    timings["grouping"] = time.perf_counter() - mark
    mark = time.perf_counter()
    p_nodule, p_malignant = classify_book_style(ct, centers, models[1], models[2], device)
    timings["classification"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    return BookStyleResult(centers, p_nodule, p_malignant, timings)
