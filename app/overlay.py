"""Segmentation overlay colours and candidate crops: pure array functions, no Qt.

The probability volume of a result is shown as an 8-bit image (probability ×
255) through a 256-entry RGBA lookup table, so changing the mode or the
segmentation threshold only swaps the table, never the pixels.
"""

from __future__ import annotations

import numpy as np

from app.planes import PlaneLayout, slice_2d
from app.windowing import WindowLevel, window_to_uint8
from engine.detection.result import threshold_level

#: Overlay colour (RGB): a cyan that stays distinct from the yellow/red markers
#: and from grey lung tissue.
OVERLAY_RGB = (0, 200, 255)


def probability_u8(values: np.ndarray) -> np.ndarray:
    """Probabilities as C-contiguous ``uint8`` 0..255 (probability × 255).

    Args:
        values: A 2D slice of the result's ``seg_probability``: ``uint8`` already
            scaled 0..255, or floating point in [0, 1] (float16/float32).

    Returns:
        ``uint8`` array of the same shape.
    """
    if values.dtype == np.uint8:
        return np.ascontiguousarray(values)
    scaled = np.multiply(values, 255.0, dtype=np.float32)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return np.rint(scaled).astype(np.uint8)


def outline_u8(levels: np.ndarray, seg_threshold: float) -> np.ndarray:
    """The outline of the segmentation on one slice: 255 on the mask's edge pixels, else 0.

    An edge pixel is in the mask with at least one of its four neighbours outside
    it (or on the image border), so the outline surrounds what was segmented
    without covering it.

    Args:
        levels: 2D ``uint8`` probability levels (probability × 255).
        seg_threshold: Segmentation threshold in [0, 1].

    Returns:
        C-contiguous ``uint8`` array of the same shape.
    """
    mask = levels > threshold_level(seg_threshold)
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0, :] = inner[-1, :] = False
    inner[:, 0] = inner[:, -1] = False
    return np.where(mask & ~inner, np.uint8(255), np.uint8(0))


def keep_boxes(image: np.ndarray, boxes: list[tuple[int, int, int, int]], margin: int = 1) -> np.ndarray:
    """Zero an overlay image outside some boxes (the findings shown on this slice).

    Args:
        image: 2D overlay image (rows = v, columns = u), not modified.
        boxes: ``(v0, v1, u0, u1)`` array index ranges (hi exclusive).
        margin: Pixels added around each box.

    Returns:
        A new array: ``image`` inside the boxes, 0 elsewhere.
    """
    keep = np.zeros(image.shape, dtype=bool)
    for v0, v1, u0, u1 in boxes:  # a handful of findings per slice
        keep[max(0, v0 - margin) : v1 + margin, max(0, u0 - margin) : u1 + margin] = True
    return np.where(keep, image, np.zeros((), dtype=image.dtype))


def crop_around(
    boxes: list[tuple[int, int, int, int]], shape: tuple[int, ...], margin: int = 2
) -> tuple[int, int, int, int]:
    """The part of a slice that :func:`keep_boxes` (margin 1) keeps of an outline, and the neighbours it reads.

    ``outline_u8`` looks at the four neighbours of a pixel, and ``keep_boxes``
    keeps one pixel around each box, so a crop ``margin=2`` pixels around the
    boxes gives exactly the pixels that the whole slice would give there.

    Args:
        boxes: ``(v0, v1, u0, u1)`` array index ranges (hi exclusive); at least one.
        shape: ``(n_v, n_u)`` of the slice.
        margin: Pixels added around the boxes' union.

    Returns:
        ``(v0, v1, u0, u1)`` of the crop, inside the slice.
    """
    v0 = max(0, min(b[0] for b in boxes) - margin)
    v1 = min(int(shape[0]), max(b[1] for b in boxes) + margin)
    u0 = max(0, min(b[2] for b in boxes) - margin)
    u1 = min(int(shape[1]), max(b[3] for b in boxes) + margin)
    return v0, max(v0 + 1, v1), u0, max(u0 + 1, u1)


def overlay_lut(mode: str, seg_threshold: float, rgb: tuple[int, int, int] = OVERLAY_RGB) -> np.ndarray:
    """The RGBA lookup table of the overlay.

    Args:
        mode: ``"probability"`` (opacity grows with the probability, nothing
            below 0.1), ``"mask"`` (solid where the voxel is segmented at
            ``seg_threshold``, see :func:`~engine.detection.result.threshold_level`), ``"outline"`` and
            ``"findings"`` (solid at 255 only: for images made by
            :func:`outline_u8`), or ``"off"`` (fully transparent).
        seg_threshold: Segmentation threshold in [0, 1], for the mask.
        rgb: Overlay colour.

    Returns:
        ``(256, 4)`` ``uint8`` RGBA table indexed by probability × 255.
    """
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:, :3] = rgb
    p = np.arange(256, dtype=np.float32) / 255.0
    if mode == "probability":
        lut[:, 3] = np.rint(np.clip((p - 0.1) / 0.9, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif mode == "mask":
        lut[threshold_level(seg_threshold) + 1 :, 3] = 255
    elif mode in ("outline", "findings"):
        lut[255, 3] = 255
    elif mode != "off":
        raise ValueError(f"unknown overlay mode {mode!r}")
    return lut


def crop_plane(
    hu: np.ndarray,
    layout: PlaneLayout,
    center_irc: tuple[float, float, float],
    fov_mm: float,
    window: WindowLevel,
) -> np.ndarray:
    """A square field of view around a point on one plane, windowed, as the screen shows it.

    Args:
        hu: ``(index, row, col)`` int16 HU volume.
        layout: The plane's layout (decides orientation and flips).
        center_irc: Centre of the crop (index, row, col), continuous.
        fov_mm: Side of the field of view in mm (the crop covers about this
            much; each side is a whole number of voxels).
        window: Window/level for the grey values.

    Returns:
        ``uint8`` grey image, rows along screen v, columns along screen u, flips
        applied, padded with black outside the volume. Pixels are
        ``layout.spacing_u`` × ``layout.spacing_v`` mm.
    """
    s = int(np.clip(np.floor(float(center_irc[layout.slice_axis]) + 0.5), 0, layout.n_slices - 1))
    plane = slice_2d(hu, layout, s)
    half_u = max(1, int(round(0.5 * fov_mm / layout.spacing_u)))
    half_v = max(1, int(round(0.5 * fov_mm / layout.spacing_v)))
    cu = int(np.floor(float(center_irc[layout.u_axis]) + 0.5))
    cv = int(np.floor(float(center_irc[layout.v_axis]) + 0.5))
    out = np.zeros((2 * half_v + 1, 2 * half_u + 1), dtype=np.uint8)
    v0, v1 = cv - half_v, cv + half_v + 1
    u0, u1 = cu - half_u, cu + half_u + 1
    sv0, sv1 = max(v0, 0), min(v1, layout.n_v)
    su0, su1 = max(u0, 0), min(u1, layout.n_u)
    if sv0 < sv1 and su0 < su1:
        out[sv0 - v0 : sv1 - v0, su0 - u0 : su1 - u0] = window_to_uint8(plane[sv0:sv1, su0:su1], window)
    if layout.u_flip:
        out = out[:, ::-1]
    if layout.v_flip:
        out = out[::-1, :]
    return np.ascontiguousarray(out)
