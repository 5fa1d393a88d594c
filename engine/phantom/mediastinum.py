"""The great vessels and the oesophagus: tubes in the mediastinum.

Aorta (ascending, arch, descending), pulmonary trunk with the right and left
pulmonary arteries running to the hila (where the lung arterial trees start),
pulmonary veins from the lower hila to the left atrium (where the venous trees
end), superior vena cava and brachiocephalic veins, the arch's three branches,
the azygos vein, the inferior vena cava through the liver, and the oesophagus
between trachea and spine. Without contrast all of them are blood or muscle
density; what makes them visible is the mediastinal fat around them.
"""

from __future__ import annotations

import numpy as np

from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.tubes import TubeSet


def _smooth_path(points: list[tuple[float, float, float]], radii: list[float], per_span: int = 6) -> TubeSet:
    """A tube through ``points`` along a Catmull–Rom curve, radii interpolated."""
    pts = np.asarray(points, dtype=np.float64)
    rad = np.asarray(radii, dtype=np.float64)
    if pts.shape[0] < 3:
        return TubeSet.polyline(pts, rad)
    padded = np.concatenate([2 * pts[:1] - pts[1:2], pts, 2 * pts[-1:] - pts[-2:-1]])
    t = np.linspace(0.0, 1.0, per_span, endpoint=False)[:, None]
    out, out_r = [], []
    for i in range(pts.shape[0] - 1):
        p0, p1, p2, p3 = padded[i], padded[i + 1], padded[i + 2], padded[i + 3]
        curve = 0.5 * (
            2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
        )
        out.append(curve)
        out_r.append(rad[i] + (rad[i + 1] - rad[i]) * t[:, 0])
    out.append(pts[-1:])
    out_r.append(rad[-1:])
    return TubeSet.polyline(np.concatenate(out), np.concatenate(out_r))


def great_vessels(thorax: Thorax, rng: np.random.Generator) -> TubeSet:
    """The mediastinal vessels of one patient as one tube set (blood density).

    Args:
        thorax: The anatomy.
        rng: Random stream (small positional variation).

    Returns:
        Tubes in patient-frame mm.
    """
    p = thorax.p
    hx, hy, hz = thorax.heart_xyz
    ax, ay, az = p.heart_axes
    cz = p.carina_z
    top = p.scan_top_z + 10.0
    bottom = p.scan_bottom_z - 10.0
    sy = float(thorax.spine_y(cz))
    tx, ty = thorax.trachea_xy

    def j(s: float = 3.0) -> float:
        return float(rng.uniform(-s, s))

    arch_z = cz + 28.0 + j(6)
    sets = []
    # aorta: root in the heart, ascending on the right front, arch over the left bronchus, descending by the spine
    sets.append(_smooth_path(
        [(hx - 0.45 * ax, hy + 0.15 * ay, hz + 0.45 * az), (4.0 + j(), -32.0 + j(), cz - 20.0),
         (5.0 + j(), -30.0, arch_z - 8.0), (10.0, -8.0 + j(), arch_z + 6.0), (22.0 + j(), sy - 26.0, arch_z - 4.0),
         (25.0 + j(), sy - 17.0, cz - 25.0), (22.0, sy - 17.0, 0.0), (10.0, sy - p.vertebra_ay - 12.0, bottom)],
        [14.0, 15.5, 14.5, 13.0, 12.0, 11.5, 11.0, 10.5]))
    # pulmonary trunk and arteries to the hila
    bif = (12.0 + j(), ty - 8.0, cz - 16.0)
    sets.append(_smooth_path([(hx - 0.1 * ax, hy - 0.55 * ay, hz + 0.5 * az), (18.0, -32.0, cz - 30.0), bif],
                             [13.0, 13.5, 12.0]))
    right_hilum = tuple(thorax.hilum[RIGHT])
    left_hilum = tuple(thorax.hilum[LEFT])
    sets.append(_smooth_path([bif, (-8.0, ty - 4.0, cz - 17.0), (-22.0, ty + 2.0, cz - 20.0), right_hilum],
                             [10.5, 10.0, 9.0, 7.5]))
    sets.append(_smooth_path([bif, (26.0, ty + 2.0, cz - 4.0), left_hilum], [10.5, 9.5, 7.5]))
    # pulmonary veins into the left atrium (back of the heart)
    atrium = (hx - 0.25 * ax, hy + 0.75 * ay, hz + 0.35 * az)
    for side in (RIGHT, LEFT):
        hil = thorax.vein_hilum[side]
        mid = (0.5 * (hil[0] + atrium[0]), 0.5 * (hil[1] + atrium[1]) + 4.0, 0.5 * (hil[2] + atrium[2]))
        sets.append(_smooth_path([tuple(hil), mid, atrium], [6.5, 7.5, 8.5]))
    # superior vena cava and brachiocephalic veins
    svc_top = (-26.0 + j(), -22.0 + j(), arch_z + 22.0)
    sets.append(_smooth_path([svc_top, (-27.0, -20.0, cz - 10.0), (hx - 0.8 * ax, hy + 0.1 * ay, hz + 0.45 * az)],
                             [10.0, 11.0, 12.0]))
    sets.append(_smooth_path([(-38.0, -12.0, top), (-32.0, -18.0, arch_z + 40.0), svc_top], [7.0, 8.0, 9.5]))
    sets.append(_smooth_path([(45.0, -22.0, top), (35.0, -32.0, arch_z + 32.0), (0.0, -36.0, arch_z + 27.0), svc_top],
                             [6.5, 7.0, 7.0, 9.0]))
    # the arch's branches: brachiocephalic trunk, left common carotid, left subclavian
    sets.append(_smooth_path([(4.0, -22.0, arch_z + 8.0), (-10.0, -20.0, arch_z + 40.0), (-16.0, -14.0, top)],
                             [7.0, 6.5, 5.5]))
    sets.append(_smooth_path([(12.0, -12.0, arch_z + 10.0), (14.0, -14.0, arch_z + 45.0), (16.0, -10.0, top)],
                             [5.0, 4.5, 4.5]))
    sets.append(_smooth_path([(19.0, -2.0, arch_z + 8.0), (28.0, 2.0, arch_z + 40.0), (44.0, 2.0, top)],
                             [5.5, 5.5, 5.0]))
    # azygos vein beside the spine, and the inferior vena cava through the liver
    sets.append(_smooth_path([(-12.0, sy - p.vertebra_ay + 4.0, bottom), (-12.0, sy - p.vertebra_ay + 2.0, cz - 10.0),
                              (-16.0, ty + 4.0, cz + 12.0), svc_top], [3.5, 4.0, 4.5, 5.0]))
    sets.append(_smooth_path([(-22.0, sy - 38.0, bottom), (-20.0, sy - 45.0, -20.0),
                              (hx - 0.75 * ax, hy + 0.35 * ay, hz - 0.5 * az)], [11.0, 12.0, 12.0]))
    return TubeSet.concat(sets)


def esophagus(thorax: Thorax, rng: np.random.Generator) -> tuple[TubeSet, TubeSet]:
    """The oesophagus (muscle) and its small air lumen, from the neck down to the stomach.

    Returns:
        ``(wall, lumen)`` tube sets; the lumen is empty in about half the patients
        (a collapsed oesophagus).
    """
    p = thorax.p
    ex, ey = thorax.esophagus_xy
    (sx, sy_, sz), _ = thorax.stomach()
    top = p.scan_top_z + 10.0
    pts = [(ex - 4.0, ey, top), (ex, ey, p.carina_z), (ex + 6.0, ey - 4.0, 20.0), (sx - 10.0, sy_ - 6.0, sz + 25.0)]
    wall = _smooth_path(pts, [7.5, 8.0, 8.5, 9.0])
    if rng.uniform() < 0.5:
        return wall, TubeSet.empty()
    lumen = _smooth_path(pts, [1.8, 2.2, 2.5, 2.5])
    return wall, lumen
