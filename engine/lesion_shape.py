"""A candidate's shape, measured on its classifier crop, and the shape-aware nodule probability.

Most of the classifier's false positives are vessels: a bright tube cut by a
48-voxel crop looks much like a ball to a small CNN trained on a few thousand
crops. Classic lung CAD tells them apart with the Hessian of the smoothed CT
(a ball curves down along all three axes, a tube along two, a plate — the
pleura, a fissure — along one) at a few scales, and with the size of the
segmented region. A nodule classifier with a *shape head*
(``NoduleClassifier(shape_head=True)``) combines those with its CNN's logit:

    p_nodule = sigmoid(w · [logit(p_cnn), shape features, ln diameter, ln voxels] + c)

The shape features (:data:`FEATURE_NAMES`) are, at each scale σ in
:data:`SIGMAS_MM`, the three eigenvalues of the scale-normalised Hessian
σ²·∇²(G_σ * HU) (in HU, ascending) and the Gaussian-smoothed HU, all at the
candidate's centre; Gaussian derivatives are taken in mm with the voxel
spacing (so they mean the same on any grid; along an axis coarser than σ the
Gaussian is one voxel wide, :func:`axis_sigmas_mm`) as one separable
contraction per crop, evaluated at the fractional centre (no resampling,
nothing loops over candidates in Python). Outside the crop counts as air. The size inputs are the
candidate's segmented region: its equivalent-sphere diameter and its voxel
count, so the head needs a candidate from the grouping, not just a point.

The head's intercept is set when it is fitted (``python -m training
shape-head``) so that p ≥ 0.5 is a chosen number of false positives per scan
on the fitting series; the ranking, and so the FROC, does not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.crops import measure_at_centres

#: Gaussian scales of the Hessian, mm (small nodule .. 20 mm nodule).
SIGMAS_MM = (1.0, 2.0, 3.5, 5.0)
#: Names of the crop features, in order: per scale three eigenvalues and the smoothed HU.
FEATURE_NAMES = tuple(
    name
    for sigma in SIGMAS_MM
    for name in (f"hessian_{sigma:g}mm_1", f"hessian_{sigma:g}mm_2", f"hessian_{sigma:g}mm_3", f"hu_{sigma:g}mm")
)
#: Names of the head's inputs, in order (its ``Linear`` weights follow them).
INPUT_NAMES = ("logit_p_cnn", *FEATURE_NAMES, "ln_diameter_mm", "ln_voxels")
#: HU of air: the crop is shifted by it, so outside the crop adds nothing.
AIR_HU = -1000.0
#: Crops measured per contraction (bounds the scratch memory, ~10 MB).
CHUNK = 32


def _gaussians(offsets_mm: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1-D Gaussian and its first and second derivatives at ``offsets_mm`` (per mm)."""
    g = np.exp(-0.5 * (offsets_mm / sigma) ** 2) / (np.sqrt(2.0 * np.pi) * sigma)
    return g, -offsets_mm / sigma**2 * g, (offsets_mm**2 / sigma**4 - 1.0 / sigma**2) * g


def axis_sigmas_mm(sigma: float, spacing_irc: Sequence[float]) -> np.ndarray:
    """The Gaussian's width along each axis: ``sigma``, but at least one voxel.

    A second-derivative kernel sampled more coarsely than its width sums to
    nonsense (σ = 1 mm on 2.5 mm slices changes sign between samples), so along
    a coarse axis the smallest scales are as wide as a voxel.
    """
    return np.maximum(float(sigma), np.asarray(spacing_irc, dtype=np.float64).reshape(3))


def shape_features(
    crops: np.ndarray, spacing_irc: Sequence[float], centers: np.ndarray | None = None
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of each crop's candidate.

    Args:
        crops: ``(N, I, R, C)`` HU, any real dtype (classifier crops as cut).
        spacing_irc: Voxel spacing in mm (index, row, col); the same for every crop.
        centers: ``(N, 3)`` candidate centres in voxels of each crop (fractional);
            default the crop's centre (``w/2 - 0.5`` per axis).

    Returns:
        float64 ``(N, len(FEATURE_NAMES))``.
    """
    crops = np.asarray(crops)
    n = int(crops.shape[0])
    if centers is None:
        centers = np.broadcast_to(np.asarray(crops.shape[1:], dtype=np.float64) / 2.0 - 0.5, (n, 3))
    centers = np.asarray(centers, dtype=np.float64).reshape(n, 3)
    spacing = np.asarray(spacing_irc, dtype=np.float64).reshape(3)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"voxel spacing must be three positive numbers (mm), got {tuple(spacing)}")
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        out[start:stop] = _features(crops[start:stop], centers[start:stop], spacing)
    return out


def _features(crops: np.ndarray, centers: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    tissue = crops.astype(np.float32) - np.float32(AIR_HU)  # air 0: outside the crop is air
    voxel_volume = float(np.prod(spacing))
    offsets = [
        ((np.arange(tissue.shape[1 + axis])[None, :] - centers[:, axis:axis + 1]) * spacing[axis])
        for axis in range(3)
    ]  # (m, width) mm from the centre along each axis
    columns = []
    for sigma in SIGMAS_MM:
        widths = axis_sigmas_mm(sigma, spacing)
        gz, gy, gx = (tuple(k.astype(np.float32) for k in _gaussians(o, w)) for o, w in zip(offsets, widths))
        by_z = [np.einsum("nzyx,nz->nyx", tissue, gz[order]) for order in range(3)]

        def term(oz: int, oy: int, ox: int) -> np.ndarray:
            plane = np.einsum("nyx,ny->nx", by_z[oz], gy[oy])
            return np.einsum("nx,nx->n", plane, gx[ox]).astype(np.float64) * voxel_volume

        hessian = np.empty((len(tissue), 3, 3))
        hessian[:, 0, 0], hessian[:, 1, 1], hessian[:, 2, 2] = term(2, 0, 0), term(0, 2, 0), term(0, 0, 2)
        hessian[:, 0, 1] = hessian[:, 1, 0] = term(1, 1, 0)
        hessian[:, 0, 2] = hessian[:, 2, 0] = term(1, 0, 1)
        hessian[:, 1, 2] = hessian[:, 2, 1] = term(0, 1, 1)
        columns.append(np.linalg.eigvalsh(hessian) * sigma**2)  # ascending, HU
        columns.append((term(0, 0, 0) + AIR_HU)[:, None])
    return np.concatenate(columns, axis=1)


def features_at(hu: np.ndarray, spacing_irc: Sequence[float], centers_irc: np.ndarray) -> np.ndarray:
    """:func:`shape_features` of the candidate at each centre, on its classifier crop.

    The crop is the classifiers' (edge-shifted as SPEC §1.3); each candidate is
    measured at its own centre in it. Crops are cut a chunk at a time.
    """
    return measure_at_centres(
        hu, centers_irc, lambda crops, inside: shape_features(crops, spacing_irc, inside), len(FEATURE_NAMES), CHUNK
    )


def head_inputs(
    p_cnn: np.ndarray, features: np.ndarray, voxel_counts: np.ndarray, spacing_irc: Sequence[float]
) -> np.ndarray:
    """``(N, len(INPUT_NAMES))`` inputs of the shape head."""
    from engine.detection.grouping import equivalent_diameter_mm
    from engine.lesion_size import logit

    counts = np.maximum(np.asarray(voxel_counts, dtype=np.float64).reshape(-1), 1.0)
    diameters = equivalent_diameter_mm(counts, tuple(float(v) for v in spacing_irc))
    return np.column_stack([
        logit(np.asarray(p_cnn, dtype=np.float64).reshape(-1)),
        np.asarray(features, dtype=np.float64).reshape(len(counts), len(FEATURE_NAMES)),
        np.log(diameters),
        np.log(counts),
    ])


def shape_aware_probability(coefficients: Sequence[float], inputs: np.ndarray) -> np.ndarray:
    """``sigmoid(inputs @ w + c)`` for ``coefficients = (*w, c)``."""
    w = np.asarray(coefficients, dtype=np.float64).reshape(-1)
    if w.size != len(INPUT_NAMES) + 1:
        raise ValueError(f"a shape head has {len(INPUT_NAMES) + 1} coefficients, got {w.size}")
    z = np.asarray(inputs, dtype=np.float64) @ w[:-1] + w[-1]
    return 1.0 / (1.0 + np.exp(-z))


def shape_aware_at(
    coefficients: Sequence[float] | None,
    p_cnn: np.ndarray,
    hu: np.ndarray,
    spacing_irc: Sequence[float],
    centers_irc: np.ndarray,
    voxel_counts: np.ndarray | None,
) -> np.ndarray:
    """A nodule classifier's shape head (``shape_coefficients()``) applied to the candidates.

    ``p_cnn`` unchanged when ``coefficients`` is None (no shape head), ``voxel_counts``
    is None (points, not grouped candidates: the head needs the region), or there
    are no candidates.
    """
    if coefficients is None or voxel_counts is None or len(p_cnn) == 0:
        return p_cnn
    features = features_at(hu, spacing_irc, centers_irc)
    return shape_aware_probability(coefficients, head_inputs(p_cnn, features, voxel_counts, spacing_irc))
