"""Phantom candidates (LUNA16 candidate-detector-like) and the vessel trees they mostly sit on."""

from __future__ import annotations

import numpy as np
import pytest

from engine.geometry import xyz_to_irc
from engine.phantom import Tissue, generate_series, plan_series
from engine.phantom.lungspace import depth_below_pleura
from engine.phantom.series import truth_of


@pytest.fixture(scope="module")
def truths():
    # planning only: candidates need no voxels
    return [truth_of(plan_series(seed, "small", n_nodules=2)) for seed in range(8)]


def test_hundreds_of_negatives_and_a_few_positives_per_thousand(truths):
    negatives = positives = 0
    for truth in truths:
        labels = np.array([c.label for c in truth.candidates])
        n_neg = int((labels == 0).sum())
        assert 300 <= n_neg <= 950
        assert 2 <= int(labels.sum()) <= 4  # one or two per nodule
        negatives += n_neg
        positives += int(labels.sum())
    rate = positives / (positives + negatives)
    assert 0.001 <= rate <= 0.01  # real LUNA16: 0.25 %


def test_positives_on_nodules_negatives_off_them(truths):
    for truth in truths:
        centers = np.array([n.center_xyz for n in truth.nodules])
        radii = np.array([n.diameter_mm / 2 for n in truth.nodules])
        for cand in truth.candidates:
            dist = np.linalg.norm(centers - np.asarray(cand.center_xyz), axis=1)
            if cand.label:
                assert (dist <= 0.25 * radii + 1e-6).any()
            else:
                assert (dist > radii + 2.0).all()


def test_most_negatives_are_vessels(truths):
    sources = [c.source for t in truths for c in t.candidates if c.label == 0]
    share = {s: sources.count(s) / len(sources) for s in set(sources)}
    assert share["vessel"] + share["bifurcation"] > 0.6
    assert {"pleura", "airway", "parenchyma"} <= set(share)


def test_candidates_lie_in_the_lungs():
    ct, truth = generate_series(4, "small")
    inside = {Tissue.LUNG, Tissue.VESSEL, Tissue.AIRWAY_WALL, Tissue.AIRWAY_LUMEN, Tissue.NODULE, Tissue.FINDING}
    irc = xyz_to_irc(ct.geometry, np.array([c.center_xyz for c in truth.candidates]))
    in_volume = np.all((irc >= 0) & (irc < np.array(ct.shape)), axis=1)
    assert in_volume.all()
    tissue = truth.labels[tuple(irc.T)]
    share = np.isin(tissue, [int(t) for t in inside]).mean()
    assert share > 0.85  # coarse voxels: a few land on the pleural partial-volume edge
    vessel_like = np.array([c.source in ("vessel", "bifurcation") for c in truth.candidates])
    hu = ct.hu[tuple(irc.T)]
    # vessel candidates look dense, random parenchyma ones do not
    parenchyma = np.array([c.source == "parenchyma" for c in truth.candidates])
    assert np.median(hu[vessel_like]) > np.median(hu[parenchyma]) + 100


def test_vessel_trees_follow_murray_and_reach_the_pleura():
    plan = plan_series(3, "small")
    for tree in plan.trees:
        parent = tree.branch_parent
        r = tree.branch_radius
        children = {}
        for i, p in enumerate(parent):
            if p >= 0:
                children.setdefault(int(p), []).append(i)
        for p, kids in children.items():
            assert r[p] ** 3 == pytest.approx(sum(r[k] ** 3 for k in kids), rel=1e-6)
        assert 5.5 <= r[0] <= 8.5 and r.min() < 1.0
        leaves = np.setdiff1d(np.arange(r.size), parent[parent >= 0])
        depth = depth_below_pleura(plan.thorax, tree.branch_end[leaves], tree.side, max_depth=30.0)
        assert np.mean(depth < 12.0) > 0.4
        assert tree.branch_generation.max() >= 8
