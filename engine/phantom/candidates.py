"""Candidate locations like the LUNA16 candidate detectors produce (``candidates.csv``).

Real LUNA16 lists ~620 candidates per scan from three CAD systems, about
0.25 % of them on nodules; most of the rest are vessels. Here, per series:

* class 0 (several hundred): vessel cross-sections (points on 0.6–4 mm
  vessels, more on thicker ones), vessel bifurcations, bumps on the pleura,
  bronchial walls, random parenchyma, and most excluded findings — never within
  a reference nodule's radius (+2 mm), as LUNA16 labels those class 1;
* class 1: one or two points within a quarter of the radius of each nodule's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.airways import Airways
from engine.phantom.lungspace import pleural_points, sample_points, side_of
from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.vessels import VesselTree

#: Share of class-0 candidates per source.
SOURCE_SHARES = {"vessel": 0.5, "bifurcation": 0.2, "pleura": 0.12, "airway": 0.06, "parenchyma": 0.12}


@dataclass(frozen=True)
class CandidateSet:
    """Candidates of one series (patient-frame mm).

    Args:
        points: ``float64 (n, 3)`` locations.
        label: ``int8 (n,)`` class: 1 on a nodule, 0 elsewhere.
        source: ``(n,)`` what each one is on (``"nodule"``, ``"vessel"``,
            ``"bifurcation"``, ``"pleura"``, ``"airway"``, ``"parenchyma"``, ``"finding"``).
    """

    points: np.ndarray
    label: np.ndarray
    source: np.ndarray


def _on_vessels(trees: list[VesselTree], rng: np.random.Generator, n: int) -> np.ndarray:
    tubes = [t.tubes for t in trees]
    p0 = np.concatenate([t.p0 for t in tubes])
    p1 = np.concatenate([t.p1 for t in tubes])
    r = np.concatenate([t.r0 for t in tubes])
    gen = np.concatenate([t.tube_generation for t in trees])
    ok = (r >= 0.6) & (r <= 4.0) & (gen >= 1)
    weight = np.linalg.norm(p1 - p0, axis=1) * np.sqrt(r) * ok
    pick = rng.choice(p0.shape[0], size=n, p=weight / weight.sum())
    t = rng.uniform(size=(n, 1))
    return p0[pick] + t * (p1[pick] - p0[pick]) + rng.normal(0.0, 0.6, size=(n, 3))


def _on_bifurcations(trees: list[VesselTree], rng: np.random.Generator, n: int) -> np.ndarray:
    pts = np.concatenate([t.bifurcations for t in trees])
    r = np.concatenate([t.bifurcation_radius for t in trees])
    pts = pts[(r >= 0.8) & (r <= 5.0)]
    return pts[rng.integers(pts.shape[0], size=n)] + rng.normal(0.0, 0.8, size=(n, 3))


def _on_pleura(thorax: Thorax, rng: np.random.Generator, n: int) -> np.ndarray:
    n_right = int(rng.binomial(n, 0.55))
    out = []
    for side, k in ((RIGHT, n_right), (LEFT, n - n_right)):
        if k:
            surface, inward = pleural_points(thorax, rng, side, k)
            out.append(surface + inward * rng.uniform(0.5, 4.0, size=(k, 1)))
    return np.concatenate(out) if out else np.zeros((0, 3))


def _on_airways(airways: Airways, rng: np.random.Generator, n: int) -> np.ndarray:
    wall = airways.wall
    ok = (wall.r0 >= 1.2) & (wall.r0 <= 6.0)
    idx = np.flatnonzero(ok)
    pick = idx[rng.integers(idx.size, size=n)]
    t = rng.uniform(size=(n, 1))
    axis = wall.p1[pick] - wall.p0[pick]
    u = np.cross(axis, rng.normal(size=(n, 3)))
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    return wall.p0[pick] + t * axis + u * wall.r0[pick, None]


def _in_parenchyma(thorax: Thorax, rng: np.random.Generator, n: int) -> np.ndarray:
    n_right = int(rng.binomial(n, 0.55))
    parts = [sample_points(thorax, rng, RIGHT, n_right, margin=2.0) if n_right else np.zeros((0, 3)),
             sample_points(thorax, rng, LEFT, n - n_right, margin=2.0) if n > n_right else np.zeros((0, 3))]
    return np.concatenate(parts)


def make_candidates(
    thorax: Thorax,
    trees: list[VesselTree],
    airways: Airways,
    nodules: list[tuple[np.ndarray, float]],
    findings: list[np.ndarray],
    n_negative: int,
    rng: np.random.Generator,
) -> CandidateSet:
    """Candidates for one series.

    Args:
        thorax: The anatomy.
        trees: Lung vessel trees.
        airways: The airways.
        nodules: ``(center, diameter)`` of each reference nodule.
        findings: Centres of excluded findings.
        n_negative: Wanted number of class-0 candidates (a few may be dropped
            for lying on a nodule or outside the lungs).
        rng: Random stream.

    Returns:
        The candidates, in a shuffled order.
    """
    counts = rng.multinomial(n_negative, list(SOURCE_SHARES.values()))
    groups = {
        "vessel": _on_vessels(trees, rng, int(counts[0])),
        "bifurcation": _on_bifurcations(trees, rng, int(counts[1])),
        "pleura": _on_pleura(thorax, rng, int(counts[2])),
        "airway": _on_airways(airways, rng, int(counts[3])),
        "parenchyma": _in_parenchyma(thorax, rng, int(counts[4])),
    }
    pts = [g for g in groups.values()]
    src = [np.full(g.shape[0], name, dtype=object) for name, g in groups.items()]
    for center in findings:
        if rng.uniform() < 0.7:
            pts.append(center[None, :] + rng.normal(0.0, 0.7, size=(1, 3)))
            src.append(np.array(["finding"], dtype=object))
    negatives = np.concatenate(pts)
    neg_src = np.concatenate(src)
    keep = np.ones(negatives.shape[0], dtype=bool)
    keep &= side_of(thorax, negatives) > 0
    for center, diameter in nodules:
        keep &= np.linalg.norm(negatives - center, axis=1) > diameter / 2.0 + 2.0
    negatives, neg_src = negatives[keep], neg_src[keep]
    positives = []
    for center, diameter in nodules:
        k = 2 if rng.uniform() < 0.25 else 1
        for _ in range(k):
            v = rng.normal(size=3)
            v *= rng.uniform(0.0, 0.25 * diameter / 2.0) / max(float(np.linalg.norm(v)), 1e-9)
            positives.append(center + v)
    pos = np.array(positives).reshape(-1, 3)
    points = np.concatenate([negatives, pos])
    label = np.concatenate([np.zeros(negatives.shape[0], dtype=np.int8), np.ones(pos.shape[0], dtype=np.int8)])
    source = np.concatenate([neg_src, np.full(pos.shape[0], "nodule", dtype=object)])
    order = rng.permutation(points.shape[0])
    return CandidateSet(points[order], label[order], source[order])
