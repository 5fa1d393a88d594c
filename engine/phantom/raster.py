"""Voxelise the analytic anatomy slice by slice: tissue labels and base HU.

For every axial slice of the canonical grid, each pixel gets a tissue label
from the chest-wall layers, the cavity contents (lungs, mediastinum, heart,
diaphragm, liver, stomach, spleen, kidneys), the spine, sternum, scapulae and
the table. The HU is the patient's value of that tissue plus, in the lungs, a
smooth parenchymal texture and a gravity gradient (dependent lung is denser).
Tubes (vessels, airways, ribs) and nodules are added afterwards by
:func:`blend`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.phantom.bones import draw_scapulae, draw_spine, draw_sternum
from engine.phantom.config import Frame
from engine.phantom.parallel import run_chunks
from engine.phantom.slicegrid import SliceGrid
from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.tissues import N_TISSUES, Tissue, TissueValues

_LAYER_LABELS = np.array([Tissue.AIR, Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE, Tissue.MUSCLE], dtype=np.uint8)
#: Coarse grid step (mm) of the parenchymal texture field.
TEXTURE_STEP = 9.0


def _interp_matrix(n_out: int, coords: np.ndarray, step: float, n_in: int) -> np.ndarray:
    """Linear interpolation weights ``(n_out, n_in)`` from a coarse grid (``step`` mm) to ``coords`` mm."""
    u = np.clip(coords / step, 0.0, n_in - 1.000001)
    i0 = np.floor(u).astype(np.int64)
    f = (u - i0).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


class _Texture:
    """A smooth random field (lung texture) evaluated slice by slice."""

    def __init__(self, frame: Frame, rng: np.random.Generator, amplitude: float) -> None:
        nz, ny, nx = frame.shape_irc
        sx, sy, sz = frame.spacing_xyz
        cz = int(np.ceil(nz * sz / TEXTURE_STEP)) + 2
        cy = int(np.ceil(ny * sy / TEXTURE_STEP)) + 2
        cx = int(np.ceil(nx * sx / TEXTURE_STEP)) + 2
        coarse = rng.standard_normal((cz, cy, cx)).astype(np.float32) * np.float32(amplitude * 1.6)
        my = _interp_matrix(ny, np.arange(ny) * sy, TEXTURE_STEP, cy)
        mx = _interp_matrix(nx, np.arange(nx) * sx, TEXTURE_STEP, cx)
        self._planes = np.einsum("yc,zcd,xd->zyx", my, coarse, mx, optimize=True).astype(np.float32)
        self._sz = sz

    def slice(self, index: int, window: tuple[slice, slice]) -> np.ndarray:
        """The field on slice ``index`` inside a 2D window, ``float32``."""
        u = index * self._sz / TEXTURE_STEP
        i = int(np.floor(u))
        f = np.float32(u - i)
        return self._planes[i][window] * (1 - f) + self._planes[i + 1][window] * f


def render_anatomy(
    frame: Frame,
    thorax: Thorax,
    tissues: TissueValues,
    rng: np.random.Generator,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and base HU of every voxel, before tubes, nodules, blur and noise.

    Args:
        frame: The canonical grid.
        thorax: The anatomy.
        tissues: The patient's HU per tissue.
        rng: Random stream for the parenchymal texture.
        progress: Called with the fraction of slices done.

    Returns:
        ``(labels uint8 (z, y, x), hu float32 (z, y, x))`` in canonical orientation.
    """
    nz, ny, nx = frame.shape_irc
    wall = thorax.wall
    p = thorax.p
    grid = SliceGrid(frame)
    x, y = grid.x, grid.y
    prof = wall.profile(grid.theta)
    t_skin = prof.skin
    t_fat = t_skin + prof.fat
    t_muscle = t_fat + prof.muscle
    t_cavity = prof.to_cavity
    dome = thorax.dome(x, y)
    shell, core = wall.table_mask(x, y, pixel=max(frame.spacing_xyz[:2]))
    table = shell | core
    shell_index = np.flatnonzero(shell)
    lut = tissues.hu.astype(np.float32)
    back = float(wall.cavity_radius(np.array([np.pi / 2 - 0.6]), 0.5 * p.lung_height)[0]) * np.sin(np.pi / 2 - 0.6)
    gravity = (tissues.lung_gravity_hu * np.clip((y - (back - 60.0)) / 60.0, 0.0, 1.0) ** 2).astype(np.float32)
    texture = _Texture(frame, rng, tissues.lung_texture_hu)
    labels = np.empty((nz, ny, nx), dtype=np.uint8)
    hu = np.empty((nz, ny, nx), dtype=np.float32)
    neck_z = min(thorax.apex_z.values()) - 25.0

    def render(chunk: int, start: int, stop: int) -> None:
        layers: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        for iz in range(start, stop):
            z = frame.slice_z(iz)
            scale = round(float(wall.scale(z)), 3)
            inset = float(wall.top_inset(z))
            if scale not in layers:
                # the chest-wall layers change only where the outline scale does
                depth = scale * prof.outline - grid.radius
                layer = (depth > 0).view(np.uint8) + (depth > t_skin) + (depth > t_fat) + (depth > t_muscle)
                base = _LAYER_LABELS[layer]
                base[table & (layer == 0)] = Tissue.TABLE
                layers[scale] = (depth, base)
            depth, base = layers[scale]
            cavity = depth > t_cavity + inset
            win = SliceGrid.bbox(cavity)
            lab = labels[iz]
            lab[...] = base
            if win is not None:
                _cavity(lab, win, cavity, grid, dome, z, thorax, neck_z)
            draw_spine(lab, grid, z, thorax)
            draw_sternum(lab, grid, z, thorax)
            draw_scapulae(lab, grid, z, thorax, lambda w: scale * prof.outline[w] - t_cavity[w] - inset)
            h = hu[iz]
            h[...] = lut[lab]
            if win is not None:
                lung = lab[win] == Tissue.LUNG
                h_sub = h[win]
                h_sub += (gravity[win] + texture.slice(iz, win)) * lung
            if shell_index.size:
                on_table = shell_index[lab.reshape(-1)[shell_index] == Tissue.TABLE]
                h.reshape(-1)[on_table] = tissues.table_shell_hu

    run_chunks(nz, 24, render, progress)
    return labels, hu


def _cavity(lab, win, cavity, grid, dome, z, thorax, neck_z) -> None:
    """Fill the cavity inside the chest wall of one slice (in place, inside window ``win``)."""
    cav = cavity[win]
    x, y, dm = grid.x[win], grid.y[win], dome[win]
    sub = lab[win]
    thoracic = cav & (z > dm)
    sub[thoracic] = Tissue.FAT
    abdominal = cav & ~thoracic
    if abdominal.any():
        _abdomen(sub, abdominal, x, y, z, dm, thorax)
    if not thoracic.any():
        return
    if z > neck_z:
        wx = float(thorax.mediastinum_half_width(z)) + 10.0
        sub[thoracic & (np.abs(x) > wx)] = Tissue.MUSCLE
    hx, hy, hz = thorax.heart_xyz
    ax, ay, az = thorax.p.heart_axes
    if abs(z - hz) < az:
        hwin = grid.window(hx - 0.4 * ax, hy + 0.3 * ay, 1.3 * ax, 1.35 * ay)
        if hwin is not None:
            heart = thorax.heart_q(grid.x[hwin], grid.y[hwin], z) < 1.0
            lab_h = lab[hwin]
            lab_h[heart & cavity[hwin] & (z > dome[hwin])] = Tissue.HEART
    # lungs: the thoracic cavity minus the mediastinum, cut by the apical caps
    lung = thoracic.copy()
    x_low, x_high = thorax.mediastinum_reach(z)
    cols = np.flatnonzero((x[-1] > x_low) & (x[0] < x_high) | (x[0] > x_low) & (x[-1] < x_high))
    if cols.size:  # the patient's rotation tilts columns a little: widen to cover both ends
        cols = np.arange(max(int(cols[0]) - 12, 0), min(int(cols[-1]) + 13, x.shape[1]))
    if cols.size:
        c = slice(int(cols[0]), int(cols[-1]) + 1)
        lung[:, c] &= ~thorax.in_mediastinum(x[:, c], y[:, c], z)
    for side, sign in ((RIGHT, -1.0), (LEFT, 1.0)):
        part = lung & (x * sign > 0)
        if z > thorax.knee_z(side):
            part &= thorax.cap_ok(x, y, z, side)
        sub[part] = Tissue.LUNG


def _abdomen(lab, region, x, y, z, dome, thorax) -> None:
    """Fill the cavity below the diaphragm: diaphragm muscle, liver, stomach, spleen, kidneys, fat."""
    lab[region] = Tissue.FAT
    diaphragm = region & (z > dome - 4.5)
    lab[diaphragm] = Tissue.MUSCLE
    organ = region & ~diaphragm
    liver_low = -thorax.p.recess_depth - 60.0
    if z > liver_low:
        shrink = np.clip((z - liver_low) / 40.0, 0.0, 1.0)
        lab[organ & (x < thorax.liver_edge_x(y) - 60.0 * (1.0 - shrink))] = Tissue.LIVER
    (cx, cy, cz), (a, b, c) = thorax.stomach()
    if abs(z - cz) < c:
        q = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2
        lab[organ & (q < 1.0)] = Tissue.STOMACH
        if z > cz + 0.25 * c:  # gas above the fluid level
            inner = ((x - cx) / (a - 4.0)) ** 2 + ((y - cy) / (b - 4.0)) ** 2 + ((z - cz) / (c - 4.0)) ** 2 < 1.0
            lab[organ & inner] = Tissue.AIR
    (cx, cy, cz), (a, b, c) = thorax.spleen()
    if abs(z - cz) < c:
        lab[organ & ((((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2) < 1.0)] = Tissue.SPLEEN
    for (cx, cy, cz), (a, b, c) in thorax.kidneys():
        if abs(z - cz) < c:
            lab[organ & ((((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2) < 1.0)] = Tissue.KIDNEY


def blend(
    hu: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    cover: np.ndarray,
    value: float | np.ndarray,
    tissue: Tissue,
    allowed: tuple[Tissue, ...] | None = None,
    mode: str = "mix",
) -> None:
    """Paint a structure's voxel coverage into the volume (in place).

    Args:
        hu: ``float32`` volume (any orientation, C-ordered), modified.
        labels: ``uint8`` labels, same shape, modified where coverage ≥ 0.5.
        index, cover: Flat voxel indices and coverage fractions (from
            :func:`engine.phantom.tubes.rasterize`).
        value: HU of the structure (scalar or per-voxel array).
        tissue: Label given to voxels it covers at least half.
        allowed: Only voxels currently labelled one of these are painted (all when ``None``).
        mode: ``"mix"`` blends ``hu + (value - hu) * cover``; ``"max"`` keeps the
            denser of the old value and the blend (a faint structure never darkens
            a denser one, e.g. a ground-glass nodule over a vessel).
    """
    if index.size == 0:
        return
    flat_hu = hu.reshape(-1)
    flat_lab = labels.reshape(-1)
    current = flat_lab[index]
    if allowed is not None:
        ok = np.zeros(N_TISSUES, dtype=bool)
        ok[[int(t) for t in allowed]] = True
        keep = ok[current]
        index, cover, current = index[keep], cover[keep], current[keep]
        if isinstance(value, np.ndarray) and value.ndim:
            value = value[keep]
    old = flat_hu[index]
    new = old + (np.asarray(value, dtype=np.float32) - old) * cover
    if mode == "max":
        new = np.maximum(new, old)
    flat_hu[index] = new
    strong = cover >= 0.5
    flat_lab[index[strong]] = tissue
