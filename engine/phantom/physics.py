"""Scanner physics applied last: partial-volume blur, image noise, HU integers, the reconstruction circle.

The ideal HU volume is blurred with a separable ``[w, 1-2w, w]`` kernel along
each axis (about one voxel of point spread; slices thicker than 1.25 mm are
blurred less along z, as their thickness already averages), then correlated
Gaussian noise is added — white noise smoothed with ``[1/4, 1/2, 1/4]`` in-plane,
which gives the grainy texture of reconstructed CT noise — scaled to the
series' ``noise_sigma``. Values are rounded to ``int16`` and clipped to the
scanner's range [-1024, 3071]; pixels outside the reconstruction circle get the
series' padding value (-2000, -3024 or -1024, as many real scanners write), if it has one.

Works slice by slice, so no second full-size float volume is allocated.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.phantom.config import Frame
from engine.phantom.parallel import run_chunks

#: Scanner range of stored HU.
HU_MIN, HU_MAX = -1024, 3071
#: Standard deviation of [1/4, 1/2, 1/4]-smoothed (both in-plane axes) unit white noise.
_NOISE_KERNEL_STD = 0.375


def _blur_rows_cols(a: np.ndarray, w: float, out: np.ndarray) -> np.ndarray:
    """``out`` = ``a`` filtered by ``[w, 1-2w, w]`` along both axes (edges replicated)."""
    c = 1.0 - 2.0 * w
    tmp = a * np.float32(c)
    tmp[1:-1] += np.float32(w) * (a[:-2] + a[2:])
    tmp[0] += np.float32(w) * (a[0] + a[1])
    tmp[-1] += np.float32(w) * (a[-1] + a[-2])
    np.multiply(tmp, np.float32(c), out=out)
    out[:, 1:-1] += np.float32(w) * (tmp[:, :-2] + tmp[:, 2:])
    out[:, 0] += np.float32(w) * (tmp[:, 0] + tmp[:, 1])
    out[:, -1] += np.float32(w) * (tmp[:, -1] + tmp[:, -2])
    return out


def recon_circle(rows: int, cols: int) -> np.ndarray:
    """``bool (rows, cols)``: pixels outside the reconstruction circle (the field of view's inscribed circle)."""
    ny, nx = rows, cols
    r = np.arange(ny)[:, None] - (ny - 1) / 2.0
    c = np.arange(nx)[None, :] - (nx - 1) / 2.0
    return r * r + c * c > (min(nx, ny) / 2.0) ** 2


def acquire(
    hu: np.ndarray,
    frame: Frame,
    blur_weight: float,
    noise_sigma: float,
    pad_value: int | None,
    noise_seed: int,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Blur, add noise and quantise an ideal HU volume.

    Args:
        hu: ``float32 (z, y, x)`` ideal HU (canonical orientation); read only.
        frame: The grid (spacing, circle).
        blur_weight: ``w`` of the ``[w, 1-2w, w]`` kernel.
        noise_sigma: Noise standard deviation (HU).
        pad_value: HU outside the reconstruction circle, or ``None``.
        noise_seed: Seed of the noise; each block of slices draws from its own
            stream derived from it, so the result does not depend on threading.
        progress: Called with the fraction of slices done.

    Returns:
        ``int16 (z, y, x)`` HU, same orientation.
    """
    nz, ny, nx = hu.shape
    wz = np.float32(blur_weight * min(1.0, 1.25 / frame.spacing_xyz[2]))
    cz = np.float32(1.0 - 2.0 * wz)
    scale = np.float32(noise_sigma / _NOISE_KERNEL_STD)
    outside = recon_circle(ny, nx) if pad_value is not None else None
    out = np.empty(hu.shape, dtype=np.int16)

    def work(chunk: int, start: int, stop: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([int(noise_seed), chunk]))
        mixed = np.empty((ny, nx), dtype=np.float32)
        blurred = np.empty((ny, nx), dtype=np.float32)
        noise_blur = np.empty((ny, nx), dtype=np.float32)
        for k in range(start, stop):
            np.add(hu[max(k - 1, 0)], hu[min(k + 1, nz - 1)], out=mixed)
            mixed *= wz
            mixed += cz * hu[k]
            _blur_rows_cols(mixed, blur_weight, blurred)
            noise = rng.standard_normal((ny, nx), dtype=np.float32)
            _blur_rows_cols(noise, 0.25, noise_blur)
            noise_blur *= scale
            blurred += noise_blur
            np.rint(blurred, out=blurred)
            np.clip(blurred, HU_MIN, HU_MAX, out=blurred)
            slice_out = out[k]
            slice_out[...] = blurred
            if outside is not None:
                slice_out[outside] = pad_value

    run_chunks(nz, 16, work, progress)
    return out
