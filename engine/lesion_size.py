"""A lesion's size in mm, measured on its classifier crop, and the size-aware malignancy.

The classifier crops are voxel-indexed (:data:`engine.crops.CLASSIFIER_CROP`):
a CNN on them cannot tell a 6 mm nodule on a 0.6 mm grid from a 9 mm one on a
0.9 mm grid, yet size is the strongest cue of malignancy (Lung-RADS; the LIDC
readers whose ratings are the labels). So the size is measured here, in mm,
with the voxel spacing, and a malignancy model with a *size head*
(``NoduleClassifier(size_head=True)``) combines it with its CNN's logit:

    p_malignant = sigmoid(a · logit(p_cnn) + b · ln(diameter_mm) + c)

The diameter is that of the lesion's *inscribed* ball at −700 HU (ground glass
counts as lesion): the largest ball of tissue above −700 HU centred within
:data:`CENTRE_SLACK_MM` of the crop's centre. An inscribed ball is not fooled
by a vessel or the chest wall touching the nodule (a region grow would be).
Its radius from a point is a low quantile (:data:`RAY_QUANTILE`, not the
minimum: one dark voxel of heterogeneous ground glass must not end the
lesion) of the ways out along :data:`N_RAYS` rays spread over the sphere,
marched in mm steps of :data:`STEP_MM`; the centre and its six neighbours
:data:`CENTRE_SLACK_MM` away along the axes are tried and the best kept. A
crop's border counts as a way out. One gather per chunk of crops; nothing
loops over candidates in Python. (Chosen by 5-fold cross-validation on 92
training nodules among inscribed / half-maximum thresholds, quantiles and
extra inputs — solidity, density, calcium — which did not help there; see the
malignancy model card.)

The measure depends only on the crop and the spacing, so the detector, the
server's ``/v1/classify`` and an exported model's user compute the same value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.crops import measure_at_centres

#: HU above which a voxel belongs to the lesion (ground glass included).
LESION_HU = -700.0
#: How far from the crop's centre the inscribed ball's centre may lie, mm.
CENTRE_SLACK_MM = 2.0
#: Smallest diameter reported (a centre in air), mm; keeps ``ln`` finite.
MIN_DIAMETER_MM = 0.5
#: Largest radius looked for, mm.
MAX_RADIUS_MM = 20.0
#: Ray-marching step, mm.
STEP_MM = 0.35
#: Directions of the rays (a Fibonacci sphere).
N_RAYS = 48
#: The radius is this quantile of the rays' ways out.
RAY_QUANTILE = 0.1
#: Crops measured per gather (bounds the scratch memory, ~40 MB).
CHUNK = 32


def crop_centre(crop_shape: Sequence[int]) -> np.ndarray:
    """``(3,)`` voxel position of a candidate's centre in its crop (``w/2 - 0.5`` per axis, SPEC §1.3)."""
    return np.asarray(crop_shape, dtype=np.float64) / 2.0 - 0.5


def ray_directions(n: int = N_RAYS) -> np.ndarray:
    """``(n, 3)`` unit vectors spread evenly over the sphere (golden-angle spiral), (i, r, c) order."""
    k = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (3.0 - np.sqrt(5.0)) * k
    s = np.sqrt(1.0 - z * z)
    return np.stack([z, s * np.cos(phi), s * np.sin(phi)], axis=1)


def inscribed_diameter_mm(
    crops: np.ndarray, spacing_irc: Sequence[float], centers: np.ndarray | None = None
) -> np.ndarray:
    """Diameter (mm) of each crop's lesion: its inscribed ball at :data:`LESION_HU`.

    Args:
        crops: ``(N, I, R, C)`` HU, any real dtype (classifier crops as cut, not clipped or clipped).
        spacing_irc: Voxel spacing in mm (index, row, col); the same for every crop.
        centers: ``(N, 3)`` lesion centres in voxels of each crop; default the crop's centre.

    Returns:
        float64 ``(N,)``, at least :data:`MIN_DIAMETER_MM`.
    """
    crops = np.asarray(crops)
    n = int(crops.shape[0])
    if centers is None:
        centers = np.broadcast_to(crop_centre(crops.shape[1:]), (n, 3))
    centers = np.asarray(centers, dtype=np.float64).reshape(n, 3)
    spacing = np.asarray(spacing_irc, dtype=np.float64).reshape(3)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"voxel spacing must be three positive numbers (mm), got {tuple(spacing)}")
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        out[start:stop] = _diameters(crops[start:stop], centers[start:stop], spacing)
    return out


def diameters_at(hu: np.ndarray, spacing_irc: Sequence[float], centers_irc: np.ndarray) -> np.ndarray:
    """:func:`inscribed_diameter_mm` of the lesion at each centre, on its classifier crop.

    The crop is the classifiers' (edge-shifted as SPEC §1.3, so a centre near the
    volume's edge is not in its middle); each lesion is measured around its own centre.

    Args:
        hu: ``(I, R, C)`` CT in HU.
        spacing_irc: Voxel spacing in mm.
        centers_irc: ``(N, 3)`` centres in voxels (index, row, col).
    """
    return measure_at_centres(
        hu, centers_irc, lambda crops, inside: inscribed_diameter_mm(crops, spacing_irc, inside), 0, CHUNK
    )


def _diameters(crops: np.ndarray, centers: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    m = len(crops)
    shape = np.asarray(crops.shape[1:])
    origins = centers[:, None, :] + _slack(spacing)[None]  # (m, P, 3) voxels
    steps = np.arange(1, int(MAX_RADIUS_MM / STEP_MM) + 1) * STEP_MM  # (S,) mm
    offsets = ray_directions()[:, None, :] * steps[None, :, None] / spacing  # (D, S, 3) voxels
    points = np.rint(origins[:, :, None, None, :] + offsets[None, None]).astype(np.int64)  # (m, P, D, S, 3)
    inside = np.all((points >= 0) & (points < shape), axis=-1)
    idx = np.clip(points, 0, shape - 1)
    linear = ((idx[..., 0] * shape[1] + idx[..., 1]) * shape[2] + idx[..., 2]).reshape(m, -1)
    hu = np.take_along_axis(crops.reshape(m, -1), linear, axis=1).reshape(inside.shape)
    tissue = inside & (hu > LESION_HU)  # leaving the crop is a way out
    # first way out along each ray (the step before the first non-tissue sample), (m, P, D)
    first_out = np.where(tissue.all(axis=-1), len(steps), np.argmin(tissue, axis=-1))
    reach = (first_out + 0.5) * STEP_MM
    radius = np.quantile(reach, RAY_QUANTILE, axis=-1).max(axis=1)  # best of the tried centres
    return np.maximum(2.0 * radius, MIN_DIAMETER_MM)


def _slack(spacing: np.ndarray) -> np.ndarray:
    """``(7, 3)`` voxel offsets of the tried centres: none, and ±slack along each axis."""
    moves = np.zeros((7, 3))
    for axis in range(3):
        moves[1 + 2 * axis, axis] = CENTRE_SLACK_MM / spacing[axis]
        moves[2 + 2 * axis, axis] = -CENTRE_SLACK_MM / spacing[axis]
    return moves


def logit(p: np.ndarray) -> np.ndarray:
    """``ln(p / (1 - p))`` with ``p`` kept inside ``[1e-7, 1 - 1e-7]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return np.log(q) - np.log1p(-q)


def size_aware_probability(coefficients: Sequence[float], p_cnn: np.ndarray, diameter_mm: np.ndarray) -> np.ndarray:
    """``sigmoid(a · logit(p_cnn) + b · ln(diameter_mm) + c)`` for ``coefficients = (a, b, c)``."""
    a, b, c = (float(v) for v in coefficients)
    z = a * logit(p_cnn) + b * np.log(np.maximum(np.asarray(diameter_mm, dtype=np.float64), MIN_DIAMETER_MM)) + c
    return 1.0 / (1.0 + np.exp(-z))


def size_aware_at(
    coefficients: Sequence[float] | None,
    p_cnn: np.ndarray,
    hu: np.ndarray,
    spacing_irc: Sequence[float],
    centers_irc: np.ndarray,
) -> np.ndarray:
    """A malignancy model's size head (``size_coefficients()``) applied at the candidates' centres.

    ``p_cnn`` unchanged when ``coefficients`` is None (no size head) or there are no candidates.
    """
    if coefficients is None or len(p_cnn) == 0:
        return p_cnn
    return size_aware_probability(coefficients, p_cnn, diameters_at(hu, spacing_irc, centers_irc))
