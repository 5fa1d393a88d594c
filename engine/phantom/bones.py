"""The skeleton: spine, sternum and scapulae drawn per slice; ribs, costal cartilages and clavicles as tubes.

Vertebrae are stacked every ``vertebra_period`` mm with intervertebral discs;
each has a vertebral body (cortical rim around trabecular bone), the spinal
canal (CSF), the neural arch, a spinous process and transverse processes. Twelve
ribs per side leave the spine beside the transverse processes, follow the
middle of the rib layer of the chest wall around to the front while falling
40–60 mm, and the upper ten continue as costal cartilage towards the sternum.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.phantom.slicegrid import SliceGrid, Window
from engine.phantom.thorax import Thorax
from engine.phantom.tissues import Tissue
from engine.phantom.tubes import TubeSet

#: Cortical shell thickness (mm) of vertebrae, sternum and ribs.
CORTEX = 1.4


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0


def _bone(labels: np.ndarray, x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> None:
    """Draw an elliptical bone: cortical shell around trabecular bone (in place)."""
    outer = _ellipse(x, y, cx, cy, ax, ay)
    labels[outer] = Tissue.BONE_CORTICAL
    if ax > 2 * CORTEX and ay > 2 * CORTEX:
        inner = _ellipse(x, y, cx, cy, ax - CORTEX, ay - CORTEX)
        labels[inner] = Tissue.BONE_TRABECULAR


def draw_spine(labels: np.ndarray, grid: SliceGrid, z: float, thorax: Thorax) -> None:
    """Draw the vertebra (or disc) cut by the axial slice at height ``z`` into ``labels`` (in place).

    Args:
        labels: ``uint8 (rows, cols)`` tissue labels of the slice.
        grid: Patient-frame coordinates of the slice's pixels.
        z: Patient-frame height of the slice (mm).
        thorax: The anatomy.
    """
    p = thorax.p
    cy = float(thorax.spine_y(z))
    phase = (z - p.vertebra_phase) % p.vertebra_period
    in_disc = phase < p.disc
    # vertebral bodies are a little larger lower down
    grow = 1.0 + 0.0008 * (p.lung_height - z)
    ax, ay = p.vertebra_ax * grow, p.vertebra_ay * grow
    canal_y = cy + ay + 8.5
    win = grid.window(0.0, cy + 30.0, ax + 40.0, ay + 62.0)
    if win is None:
        return
    lab, x, y = labels[win], grid.x[win], grid.y[win]
    if in_disc:
        lab[_ellipse(x, y, 0.0, cy, ax, ay)] = Tissue.CARTILAGE
    else:
        _bone(lab, x, y, 0.0, cy, ax, ay)
        # neural arch: pedicles and laminae around the canal, then the spinous process
        arch_phase = (phase - p.disc) / (p.vertebra_period - p.disc)
        ring = _ellipse(x, y, 0.0, canal_y + 1.5, 14.0, 13.0)
        lab[ring & (y > cy)] = Tissue.BONE_CORTICAL
        inner = _ellipse(x, y, 0.0, canal_y + 1.5, 11.5, 10.5)
        lab[inner & (y > cy)] = Tissue.BONE_TRABECULAR
        if 0.1 < arch_phase < 0.85:
            # transverse processes point back and out towards the rib heads
            for sign in (-1.0, 1.0):
                _bone(lab, x, y, sign * 24.0, canal_y + 4.0, 13.0, 5.5)
        spin_len = 20.0 + 6.0 * arch_phase
        _bone(lab, x, y, 0.0, canal_y + 12.0 + spin_len * 0.5, 4.5, spin_len * 0.5 + 3.0)
    lab[_ellipse(x, y, 0.0, canal_y, 7.5, 7.0)] = Tissue.CSF


def sternum_span(thorax: Thorax) -> tuple[float, float]:
    """Bottom and top z (mm) of the sternum."""
    top = thorax.p.lung_height - thorax.p.sternum_top_below_apex
    return top - thorax.p.sternum_length, top


def sternum_y(thorax: Thorax, z: float) -> float:
    """y of the sternum's centre at height ``z`` (just behind the thin anterior wall)."""
    front = -float(thorax.wall.scale(z)) * thorax.p.body_b_ant
    return front + thorax.p.skin + thorax.p.fat_front + 7.0 + 6.0


def draw_sternum(labels: np.ndarray, grid: SliceGrid, z: float, thorax: Thorax) -> None:
    """Draw the sternum (manubrium at the top, body, xiphoid) cut at height ``z`` (in place)."""
    bottom, top = sternum_span(thorax)
    if not bottom <= z <= top:
        return
    u = (top - z) / (top - bottom)  # 0 at the top
    half_width = 25.0 if u < 0.28 else 16.0 - 6.0 * max(0.0, u - 0.85) / 0.15
    half_thick = 6.5 if u < 0.28 else 5.5
    cy = sternum_y(thorax, z)
    win = grid.window(0.0, cy, half_width + 2.0, half_thick + 2.0)
    if win is not None:
        _bone(labels[win], grid.x[win], grid.y[win], 0.0, cy, half_width, half_thick)


def draw_scapulae(
    labels: np.ndarray, grid: SliceGrid, z: float, thorax: Thorax, cavity_r: Callable[[Window], np.ndarray]
) -> None:
    """Draw both scapulae: thin curved plates on the back of the ribs (in place).

    Args:
        labels: ``uint8 (rows, cols)`` tissue labels of the slice.
        grid: Patient-frame coordinates of the slice's pixels.
        z: Patient-frame height of the slice (mm).
        thorax: The anatomy.
        cavity_r: Inner chest-wall radius at this ``z`` for the pixels of a window.
    """
    top = thorax.p.lung_height + 18.0
    height = 150.0
    if not top - height <= z <= top:
        return
    u = (top - z) / height  # 0 at the top, 1 at the inferior angle
    half_span = 0.42 * (1.0 - u) + 0.06
    a = thorax.p.body_a
    win = grid.window(0.0, 0.5 * thorax.p.body_b_post, a, 0.5 * thorax.p.body_b_post + 5.0)
    if win is None:
        return
    radius = grid.radius[win]
    r0 = cavity_r(win) + thorax.p.rib_layer + 6.0
    plate = (radius > r0) & (radius < r0 + 4.0 + 5.0 * (u < 0.2))
    if not plate.any():
        return
    lab = labels[win]
    for center in (np.pi / 2 - 0.85, np.pi / 2 + 0.85):
        lab[plate & (grid.angle_from(center)[win] < half_span)] = Tissue.BONE_CORTICAL


def rib_tubes(thorax: Thorax, rng: np.random.Generator) -> tuple[TubeSet, TubeSet, TubeSet]:
    """Ribs and costal cartilages of both sides, and the clavicles.

    Returns:
        ``(bone_outer, bone_inner, cartilage)`` tube sets: the rib's outer
        surface (cortex), its marrow, and the cartilages (patient-frame mm).
    """
    p = thorax.p
    wall = thorax.wall
    outer: list[TubeSet] = []
    inner: list[TubeSet] = []
    cart: list[TubeSet] = []
    top_head = p.lung_height + 8.0
    st_bottom, st_top = sternum_span(thorax)
    for k in range(12):
        head_z = top_head - k * p.vertebra_period * 0.98
        if head_z < p.scan_bottom_z - 60.0:
            break
        length_frac = (0.55 + 0.45 * min(k, 4) / 4) if k < 9 else (0.8 - 0.12 * (k - 8))
        # the front of a rib lies 3-4 vertebrae below its head
        drop = 50.0 + 7.0 * min(k, 5) + rng.uniform(-5.0, 5.0)
        radius = 3.0 + 0.2 * min(k, 5) - 0.2 * max(0, k - 8)
        for sign in (-1.0, 1.0):
            # from beside the spine (posterior) round the side towards the front
            start = np.pi / 2 - sign * 0.42
            end_angle = start - sign * (np.pi - 0.97) * length_frac
            phis = np.linspace(start, end_angle, 24)
            t = np.linspace(0.0, 1.0, phis.size)
            zs = head_z - drop * t**1.6
            prof = wall.profile(phis)
            mid = wall.scale(zs) * prof.outline - prof.skin - prof.fat - prof.muscle - 0.5 * prof.ribs - wall.top_inset(zs)
            pts = np.stack([mid * np.cos(phis), mid * np.sin(phis), zs], axis=1)
            r = np.full(pts.shape[0], radius)
            outer.append(TubeSet.polyline(pts, r))
            inner.append(TubeSet.polyline(pts, r - CORTEX))
            if k < 10 and length_frac > 0.7:
                # cartilage from the rib's front end towards the sternum edge
                end = pts[-1]
                target_z = float(np.clip(end[2] - 8.0 - 6.0 * k, st_bottom + 10.0, st_top - 5.0))
                if k >= 7:
                    target_z = end[2] - 12.0
                sx = sign * (20.0 if k > 0 else 24.0)
                sy = sternum_y(thorax, target_z)
                mid_c = np.array([0.5 * (end[0] + sx) + sign * 8.0, 0.5 * (end[1] + sy), 0.5 * (end[2] + target_z)])
                cpts = np.stack([end, mid_c, np.array([sx, sy, target_z])])
                cart.append(TubeSet.polyline(cpts, np.full(3, radius * 0.95)))
    # clavicles: from the manubrium out, back and up to the shoulders
    for sign in (-1.0, 1.0):
        sy = sternum_y(thorax, st_top)
        a = p.body_a
        pts = np.array([
            [sign * 22.0, sy - 4.0, st_top + 6.0],
            [sign * 0.45 * a, sy - 6.0, st_top + 14.0],
            [sign * 0.75 * a, sy + 25.0, st_top + 22.0],
            [sign * 0.85 * a, sy + 45.0, st_top + 26.0],
        ])
        r = np.array([7.0, 6.0, 6.0, 7.0])
        outer.append(TubeSet.polyline(pts, r))
        inner.append(TubeSet.polyline(pts, r - CORTEX))
    return TubeSet.concat(outer), TubeSet.concat(inner), TubeSet.concat(cart)
