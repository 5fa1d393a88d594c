"""Phantom nodules: size measured back from the mask, density by kind, geometry through flipped axes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.geometry import xyz_to_irc
from engine.phantom import Tissue, generate_series, plan_series

REQUESTS = (
    {"diameter_mm": 14.0, "kind": "solid", "shape": "spherical", "location": "parenchyma", "calcified": False},
    {"diameter_mm": 20.0, "kind": "solid", "shape": "lobulated", "location": "parenchyma", "calcified": False},
    {"diameter_mm": 12.0, "kind": "ground-glass", "shape": "spherical", "location": "parenchyma"},
    {"diameter_mm": 11.0, "kind": "part-solid", "shape": "spherical", "location": "juxtavascular"},
    {"diameter_mm": 16.0, "kind": "solid", "shape": "spiculated", "location": "parenchyma"},
    {"diameter_mm": 10.0, "kind": "solid", "shape": "spherical", "location": "juxtapleural", "calcified": False},
)
#: A grid finer than the small preset (1.25 x 1.25 x 2.5 mm), still quick.
FINE = {"matrix": 288, "n_slices": 128, "spacing_xyz": (1.25, 1.25, 2.5)}


@pytest.fixture(scope="module")
def fine_series():
    return generate_series(5, "small", nodules=REQUESTS, **FINE)


def _component_at(labels: np.ndarray, irc: tuple[int, int, int], tissue: Tissue, half: int = 24) -> np.ndarray:
    """The connected ``tissue`` region holding voxel ``irc``, searched in a box of ±``half`` voxels."""
    assert labels[irc] == tissue, f"voxel {irc} is {Tissue(int(labels[irc])).name}, not {tissue.name}"
    box = tuple(slice(max(c - half, 0), c + half + 1) for c in irc)
    components, _ = ndimage.label(labels[box] == tissue)
    local = tuple(c - b.start for c, b in zip(irc, box))
    out = np.zeros(labels.shape, dtype=bool)
    out[box] = components == components[local]
    return out


def test_requested_nodules_are_placed_as_asked(fine_series):
    _, truth = fine_series
    assert [(n.diameter_mm, n.kind, n.shape, n.location) for n in truth.nodules] == [
        (r["diameter_mm"], r["kind"], r["shape"], r["location"]) for r in REQUESTS
    ]


def test_diameter_measured_back_from_the_mask(fine_series):
    ct, truth = fine_series
    voxel = float(np.prod(ct.geometry.spacing_xyz))
    for nodule in truth.nodules:
        if nodule.location == "juxtapleural":
            continue  # flattened against the wall on purpose
        blob = _component_at(truth.labels, nodule.center_irc, Tissue.NODULE)
        if nodule.shape == "spiculated":
            blob = ndimage.binary_opening(blob)  # thin spicules are not part of the diameter
        measured = (6.0 * blob.sum() * voxel / np.pi) ** (1.0 / 3.0)
        assert measured == pytest.approx(nodule.diameter_mm, rel=0.15), (nodule, measured)


def test_nodule_density_by_kind(fine_series):
    ct, truth = fine_series
    for nodule in truth.nodules:
        blob = _component_at(truth.labels, nodule.center_irc, Tissue.NODULE)
        core = ndimage.binary_erosion(blob, iterations=1)
        values = ct.hu[core if core.any() else blob].astype(float)
        median = float(np.median(values))
        if nodule.kind == "ground-glass":
            assert -780.0 <= median <= -250.0, (nodule.kind, median)
        elif nodule.kind == "solid":
            assert -150.0 <= median <= 150.0, (nodule.kind, median)
        else:  # part-solid: a solid core (blurred by partial volume when small) inside ground glass
            assert values.min() < -350.0 and values.max() > values.min() + 250.0


def test_bounding_boxes_hold_the_nodules(fine_series):
    _, truth = fine_series
    for nodule in truth.nodules:
        low, high, center = map(np.asarray, (nodule.bbox_low_xyz, nodule.bbox_high_xyz, nodule.center_xyz))
        assert np.all(low < center) and np.all(center < high)
        assert np.all(high - low >= 0.8 * nodule.diameter_mm)
        assert np.all(high - low <= 2.0 * nodule.diameter_mm)


def test_locations(fine_series):
    ct, truth = fine_series
    labels = truth.labels
    wall = np.isin(labels, [Tissue.MUSCLE, Tissue.FAT, Tissue.BONE_CORTICAL, Tissue.HEART, Tissue.LIVER])
    for nodule in truth.nodules:
        blob = _component_at(labels, nodule.center_irc, Tissue.NODULE)
        if nodule.shape == "spiculated":
            blob = ndimage.binary_opening(blob)  # spicules may reach the pleura
        touches_vessel = bool((ndimage.binary_dilation(blob, iterations=2) & (labels == Tissue.VESSEL)).any())
        if nodule.location == "juxtapleural":
            assert (ndimage.binary_dilation(blob, iterations=2) & wall).any()
        elif nodule.location == "juxtavascular":
            assert touches_vessel
        else:  # at least 3 mm of lung between nodule and chest wall
            assert not (ndimage.binary_dilation(blob) & wall).any()


@pytest.mark.parametrize("flip", [(True, True, False), (False, False, True)])
def test_annotations_land_on_nodules_through_flipped_axes(flip):
    requests = REQUESTS[:3]
    ct, truth = generate_series(9, "small", nodules=requests, flip_xyz=flip)
    plain, plain_truth = generate_series(9, "small", nodules=requests, flip_xyz=(False, False, False))
    d = np.asarray(ct.geometry.direction).reshape(3, 3)
    assert np.allclose(np.diag(d), [-1.0 if f else 1.0 for f in flip])
    # the flipped file holds the same voxels in the other order
    view = plain.hu[:: -1 if flip[2] else 1, :: -1 if flip[1] else 1, :: -1 if flip[0] else 1]
    assert np.array_equal(ct.hu, view)
    for nodule, plain_nodule in zip(truth.nodules, plain_truth.nodules):
        assert nodule.center_xyz == pytest.approx(plain_nodule.center_xyz)
        irc = tuple(int(v) for v in xyz_to_irc(ct.geometry, nodule.center_xyz))
        assert irc == nodule.center_irc
        assert truth.labels[irc] == Tissue.NODULE
        expected = -300 if nodule.kind != "ground-glass" else -800
        assert ct.hu[irc] > expected


def test_random_nodules_follow_the_real_size_range():
    plans = [plan_series(seed, "small", n_nodules=3, n_candidates=10, tree_points=60) for seed in range(6)]
    diameters = [n.look.diameter_mm for plan in plans for n in plan.nodules]
    assert len(diameters) == 18
    assert min(diameters) >= 3.25 and max(diameters) <= 32.3
