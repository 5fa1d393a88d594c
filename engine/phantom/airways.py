"""Trachea, main bronchi and the bronchial tree beside the pulmonary arteries.

The trachea runs down the midline in front of the oesophagus to the carina;
the right main bronchus is short and steep, the left longer and more
horizontal. Inside the lungs every pulmonary artery branch of radius
≥ ``MIN_ARTERY_RADIUS`` has a bronchus of about the same size running beside it
(the bronchovascular bundle), offset sideways by the two radii plus a small
gap. Each airway is a wall (cartilage / soft tissue density) around an air
lumen, so on an axial slice a bronchus cut across is a dark ring next to a
bright dot — a classic source of false-positive candidates at the wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.tubes import TubeSet
from engine.phantom.vessels import VesselTree

#: Arteries thinner than this (mm) have no visible bronchus beside them.
MIN_ARTERY_RADIUS = 1.1


@dataclass(frozen=True)
class Airways:
    """The airway tree.

    Args:
        wall: Outer surface of every airway (mm, patient frame).
        lumen: The air inside (same axes, smaller radii).
    """

    wall: TubeSet
    lumen: TubeSet


def _wall_thickness(radius: np.ndarray) -> np.ndarray:
    """Airway wall thickness (mm) for an outer radius (mm)."""
    return 0.17 * radius + 0.3


def _tube_pair(points: np.ndarray, radii: np.ndarray) -> tuple[TubeSet, TubeSet]:
    wall = TubeSet.polyline(points, radii)
    return wall, TubeSet.polyline(points, radii - _wall_thickness(radii))


def build_airways(thorax: Thorax, arteries: list[VesselTree], rng: np.random.Generator) -> Airways:
    """Trachea, main bronchi, and bronchi paired with the arterial trees.

    Args:
        thorax: The anatomy.
        arteries: The arterial trees (one per lung).
        rng: Random stream.

    Returns:
        The airways.
    """
    p = thorax.p
    tx, ty = thorax.trachea_xy
    cx, cy, cz = thorax.carina
    rt = thorax.trachea_radius
    walls, lumens = [], []
    trachea = np.array([[tx, ty - 2.0, p.scan_top_z + 10.0], [tx, ty, cz + 30.0], [cx, cy, cz]])
    w, lu = _tube_pair(trachea, np.array([rt, rt, rt * 0.9]))
    walls.append(w)
    lumens.append(lu)
    main_end = {
        RIGHT: np.array([cx - 22.0, cy + 8.0, cz - 22.0]),
        LEFT: np.array([cx + 36.0, cy + 12.0, cz - 36.0]),
    }
    main_r = {RIGHT: 0.72 * rt, LEFT: 0.64 * rt}
    for tree in arteries:
        side = tree.side
        end = main_end[side]
        mid = 0.5 * (np.array([cx, cy, cz]) + end) + np.array([0.0, 0.0, 3.0])
        w, lu = _tube_pair(np.stack([np.array([cx, cy, cz]), mid, end]),
                           np.array([0.85 * rt, main_r[side], 0.9 * main_r[side]]))
        walls.append(w)
        lumens.append(lu)
        w, lu = _paired_bronchi(tree, end, 0.9 * main_r[side], rng)
        walls.append(w)
        lumens.append(lu)
    return Airways(TubeSet.concat(walls), TubeSet.concat(lumens))


def _paired_bronchi(tree: VesselTree, root_start: np.ndarray, root_radius: float,
                    rng: np.random.Generator) -> tuple[TubeSet, TubeSet]:
    """Bronchi beside the artery branches of one tree, joined to the main bronchus end."""
    start, end = tree.branch_start, tree.branch_end
    ra = tree.branch_radius
    keep = ra >= MIN_ARTERY_RADIUS
    direction = end - start
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    ref = np.where(np.abs(direction[:, 2:3]) > 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    side_vec = np.cross(direction, ref)
    side_vec /= np.maximum(np.linalg.norm(side_vec, axis=1, keepdims=True), 1e-9)
    rb = 0.95 * ra * rng.uniform(0.9, 1.1, size=ra.shape)
    offset = side_vec * (ra + rb + 0.6)[:, None]
    parent = tree.branch_parent
    start_offset = np.where(parent[:, None] >= 0, offset[np.maximum(parent, 0)], offset)
    b_start = start + start_offset
    b_end = end + offset
    walls = TubeSet(b_start[keep], b_end[keep], rb[keep], rb[keep])
    lumen_r = rb[keep] - _wall_thickness(rb[keep])
    lumens = TubeSet(walls.p0, walls.p1, lumen_r, lumen_r)
    roots = np.flatnonzero(keep & (parent < 0))
    bridges_w, bridges_l = [], []
    for i in roots:
        pts = np.stack([root_start, b_start[i]])
        w, lu = _tube_pair(pts, np.array([root_radius, rb[i]]))
        bridges_w.append(w)
        bridges_l.append(lu)
    return TubeSet.concat([walls] + bridges_w), TubeSet.concat([lumens] + bridges_l)
