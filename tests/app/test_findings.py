"""Threshold classes, marker geometry and carried marks (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from app.findings import (
    FindingClass,
    Mark,
    Thresholds,
    carry_marks,
    classify,
    marker_radius_mm,
    plane_markers,
    slice_span,
)
from app.planes import Plane, plane_layout
from tests.app.fakes import make_candidate


@pytest.fixture
def ct(make_ct):
    return make_ct(shape=(20, 40, 40), spacing_xyz=(0.8, 0.8, 2.0))


def _cands(ct):
    return (
        make_candidate(ct, 1, (10, 20, 20), 0.95, 0.8, 12.0),
        make_candidate(ct, 2, (5, 10, 10), 0.6, 0.2, 6.0),
        make_candidate(ct, 3, (15, 30, 30), 0.42, 0.7, 5.0),
        make_candidate(ct, 4, (12, 5, 30), 0.1, 0.9, 4.0),
    )


def test_classes_follow_thresholds(ct) -> None:
    cands = _cands(ct)
    fs = classify(cands, Thresholds(nodule=0.5, near_miss_band=0.2, malignancy=0.5))
    assert fs.ids() == [1, 2, 3]  # highest p_nodule first; candidate 4 hidden
    assert [f.klass for f in fs.findings] == [FindingClass.NODULE, FindingClass.NODULE, FindingClass.NEAR_MISS]
    assert [f.malignant for f in fs.findings] == [True, False, True]
    assert (fs.n_nodules, fs.n_malignant, fs.n_near_misses, fs.n_candidates) == (2, 1, 1, 4)
    assert classify(cands, Thresholds(0.5, 0.0, 0.5)).ids() == [1, 2]  # no band, no near misses
    assert classify(cands, Thresholds(0.7, 0.65, 0.5)).ids() == [1, 2, 3, 4]
    assert classify(cands, Thresholds(0.5, 0.2, 0.75)).n_malignant == 1
    assert classify((), Thresholds()).n_candidates == 0


def test_marks_are_attached(ct) -> None:
    fs = classify(_cands(ct), Thresholds(), {2: Mark.REJECTED})
    assert fs.by_id(2).mark == Mark.REJECTED and fs.by_id(1).mark is None
    assert fs.by_id(4) is None


def test_slice_span_uses_the_box_or_the_diameter(ct) -> None:
    c = make_candidate(ct, 1, (10, 20, 20), 0.9, 0.1, 8.0)  # 8 mm on 2 mm slices → ±2 slices
    assert slice_span(c, 0, 2.0) == (8, 12)
    no_box = type(c)(**{**c.__dict__, "bbox_irc": None})
    assert slice_span(no_box, 0, 2.0) == (8, 12)


def test_marker_radius_is_a_sphere_section_with_margin() -> None:
    assert_allclose(marker_radius_mm(5.0, 0.0), 7.5)  # 5 mm + 2.5 mm margin
    assert_allclose(marker_radius_mm(5.0, 4.0), 3.0 + 2.5)  # a sphere's section 4 mm off centre
    assert_allclose(marker_radius_mm(5.0, 10.0), 0.6 * 5 + 2.5)  # floor at 60 %
    assert_allclose(marker_radius_mm(20.0, 0.0), 20.0 + 6.0)  # margin 30 % of large radii
    assert_allclose(marker_radius_mm(0.5, 0.0), 4.0)  # never tiny
    assert marker_radius_mm(np.array([2.0, 8.0]), np.array([0.0, 0.0])).shape == (2,)


def test_markers_on_slices_in_each_plane(ct) -> None:
    fs = classify(_cands(ct), Thresholds())
    for plane in Plane:
        layout = plane_layout(ct.geometry, ct.shape, plane)
        pm = plane_markers(fs.findings, layout)
        for k, f in enumerate(fs.findings):
            first, last = slice_span(f.candidate, layout.slice_axis, layout.spacing_slice)
            centre = int(round(f.candidate.center_irc[layout.slice_axis]))
            hit, radius = pm.on_slice(centre)
            assert k in hit
            assert_allclose((pm.u_mm[k], pm.v_mm[k]), layout.to_screen(f.candidate.center_irc))
            assert k not in pm.on_slice(last + 1)[0] and k not in pm.on_slice(first - 1)[0]
            assert k in pm.on_slice(first)[0] and k in pm.on_slice(last)[0]
            r_centre = radius[list(hit).index(k)]
            assert r_centre == pytest.approx(float(marker_radius_mm(f.candidate.diameter_mm / 2, 0.0)))


def test_carry_marks_to_regrouped_candidates(ct) -> None:
    old = _cands(ct)
    new = (
        make_candidate(ct, 11, (10, 20, 21), 0.9, 0.8, 12.0),  # 0.8 mm from old 1
        make_candidate(ct, 12, (18, 38, 38), 0.6, 0.2, 6.0),  # far from everything
    )
    carried = carry_marks(old, new, {1: Mark.ACCEPTED, 2: Mark.REJECTED, 99: Mark.ACCEPTED})
    assert carried == {11: Mark.ACCEPTED}


def test_fragments_fold_into_the_bigger_lesion_and_rows_are_numbered(ct) -> None:
    big = make_candidate(ct, 130, (10, 20, 20), 0.80, 0.6, 13.7)
    piece = make_candidate(ct, 148, (10, 22, 21), 0.95, 0.3, 3.0)  # 1.8 mm from the big one's centre
    sliver = make_candidate(ct, 488, (11, 18, 19), 0.60, 0.2, 2.1)
    alone = make_candidate(ct, 7, (3, 5, 5), 0.90, 0.1, 5.0)
    fs = classify((big, piece, sliver, alone), Thresholds())
    assert fs.ids() == [7, 130]  # one row per lesion, by p_nodule
    assert [f.number for f in fs.findings] == [1, 2]
    lesion = fs.by_id(130)
    assert {c.id for c in lesion.fragments} == {148, 488} and lesion.member_ids[0] == 130
    assert fs.by_id(148) is lesion  # a fragment's id finds its lesion
    assert fs.n_nodules == 2 and fs.n_fragments == 2
    hidden_big = classify((make_candidate(ct, 1, (10, 20, 20), 0.1, 0.6, 13.7), piece), Thresholds())
    assert hidden_big.ids() == [148]  # a fragment of a hidden lesion is still shown


def test_carried_marks_are_one_to_one(ct) -> None:
    old = (make_candidate(ct, 1, (10, 20, 20), 0.9, 0.1, 12.0), make_candidate(ct, 2, (10, 20, 22), 0.9, 0.1, 12.0))
    new = (make_candidate(ct, 5, (10, 20, 21), 0.9, 0.1, 12.0),)
    assert carry_marks(old, new, {1: Mark.ACCEPTED, 2: Mark.REJECTED}) == {5: Mark.ACCEPTED}


def test_location_from_the_lung_extent() -> None:
    from app.location import LungExtent, image_extent, lung_extent

    extent = LungExtent(x_mm=(-150.0, 150.0), z_mm=(-300.0, 0.0))
    assert extent.describe((-100.0, 0.0, -20.0)) == "R upper"  # LPS: negative x is patient right
    assert extent.describe((80.0, 0.0, -150.0)) == "L middle"
    assert extent.describe((10.0, 0.0, -290.0)) == "L lower"
    assert extent.describe((10.0, 0.0, 40.0)) == "L upper"  # above the box: clipped to the top third
    assert extent.long_words((-100.0, 0.0, -250.0)) == "right lung, lower third"

    # a chest: body block with two lungs on slices 10..29 of 40
    from engine.geometry import Geometry
    from engine.io.volume import CtVolume

    hu = np.full((40, 64, 64), -1000, dtype=np.int16)
    hu[:, 8:56, 4:60] = 40
    hu[10:30, 16:48, 8:28] = -850
    hu[10:30, 16:48, 36:56] = -850
    ct = CtVolume(hu=hu, geometry=Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 2.0)), series_uid="1.2.chest")
    found = image_extent(ct)
    assert found.z_mm[0] == pytest.approx(20.0) and found.z_mm[1] == pytest.approx(58.0)
    assert 6.0 <= found.x_mm[0] <= 10.0 and 52.0 <= found.x_mm[1] <= 58.0
    assert found.describe((12.0, 30.0, 56.0)) == "R upper" and found.describe((50.0, 30.0, 22.0)) == "L lower"
    assert lung_extent(ct, None) == found  # without a detection: read from the image
