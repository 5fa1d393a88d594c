"""Excluded ("irrelevant") findings, like LUNA16's ``annotations_excluded.csv``.

Things a radiologist marked that are not reference nodules: nodules smaller
than 3 mm, small calcified granulomas, and linear scars (listed with diameter
-1). They are drawn into the volume — a detector sees them — but an
evaluation neither rewards nor penalises marks on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.phantom.lungspace import pleural_points, sample_points
from engine.phantom.nodules import NoduleBody, make_body
from engine.phantom.thorax import LEFT, RIGHT, Thorax
from engine.phantom.tubes import TubeSet

FINDING_KINDS = ("small nodule", "granuloma", "scar")


@dataclass(frozen=True)
class FindingSpec:
    """One excluded finding.

    Args:
        kind: One of :data:`FINDING_KINDS`.
        body: Its geometry and density.
        listed_diameter: Diameter written to the CSV (mm), -1 for a scar.
    """

    kind: str
    body: NoduleBody
    listed_diameter: float


def make_findings(thorax: Thorax, rng: np.random.Generator, n: int) -> list[FindingSpec]:
    """``n`` excluded findings at random places in the lungs."""
    out = []
    for _ in range(n):
        kind = str(rng.choice(FINDING_KINDS, p=(0.5, 0.3, 0.2)))
        side = RIGHT if rng.uniform() < 0.55 else LEFT
        if kind == "scar":
            surface, inward = pleural_points(thorax, rng, side, 1)
            center = surface[0] + inward[0] * rng.uniform(3.0, 8.0)
            along = np.cross(inward[0], rng.normal(size=3))
            along /= max(float(np.linalg.norm(along)), 1e-9)
            half = rng.uniform(5.0, 11.0)
            body = make_body(center, 2.0, "solid", "spherical", False, rng)
            band = TubeSet(
                np.array([-along * half, -along * half * 0.2]),
                np.array([along * half * 0.2, along * half]) + inward[0] * rng.uniform(-2.0, 2.0),
                np.array([0.7, 0.9]),
                np.array([0.9, 0.6]),
            )
            body = NoduleBody(body.center, 2.0, body.balls * 0.5, band, "solid", rng.uniform(-120.0, 0.0),
                              0.0, 1.0, 0.0, 0.0, body.texture_seed)
            out.append(FindingSpec(kind, body, -1.0))
            continue
        center = sample_points(thorax, rng, side, 1, margin=5.0)[0]
        if kind == "small nodule":
            d = float(rng.uniform(1.6, 3.0))
            out.append(FindingSpec(kind, make_body(center, d, "solid", "spherical", False, rng), round(d, 2)))
        else:
            d = float(rng.uniform(2.0, 5.0))
            body = make_body(center, d, "solid", "spherical", True, rng)
            body = NoduleBody(body.center, d, body.balls, body.spicules, "solid", body.hu_solid, 0.0, 1.0,
                              1.0, float(rng.uniform(300.0, 900.0)), body.texture_seed)
            out.append(FindingSpec(kind, body, round(d, 2)))
    return out
