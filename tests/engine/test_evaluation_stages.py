"""Per-stage losses on hand-built cases: flagged, candidate within the radius, best p and rank, groups."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.evaluation.stages import (
    attributes_for,
    max_probability_within,
    nodule_stages,
    read_attributes,
    summarize_stages,
)
from engine.errors import DatasetError
from engine.geometry import Geometry


def _geometry() -> Geometry:
    return Geometry(origin_xyz=(0.0, 0.0, 0.0), spacing_xyz=(1.0, 1.0, 2.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_max_probability_within_the_radius_only():
    levels = np.zeros((10, 20, 20), np.uint8)
    levels[5, 10, 13] = 200  # 3 mm from the centre (col = x)
    levels[5, 10, 17] = 255  # 7 mm away
    centre = np.array([[10.0, 10.0, 10.0]])  # x, y, z=10 mm -> index 5
    assert_allclose(max_probability_within(levels, _geometry(), centre, np.array([8.0])), [200 / 255])
    assert_allclose(max_probability_within(levels, _geometry(), centre, np.array([4.0])), [0.0])
    assert_allclose(max_probability_within(levels, _geometry(), centre, np.array([16.0])), [1.0])
    levels[5, 10, 10] = 100  # a nodule smaller than a voxel is judged by the voxel nearest its centre
    assert_allclose(max_probability_within(levels, _geometry(), centre, np.array([0.5])), [100 / 255])
    assert max_probability_within(levels, _geometry(), np.zeros((0, 3)), np.zeros(0)).shape == (0,)


def test_stage_counts_of_a_hand_built_scan():
    nodules = np.array([[0.0, 0, 0], [50.0, 0, 0], [100.0, 0, 0], [150.0, 0, 0]])
    diameters = np.array([6.0, 10.0, 4.0, 20.0])
    seg_max = np.array([0.9, 0.8, 0.2, 0.7])  # nodule 2 is not flagged at 0.5
    candidates = np.array([[1.0, 0, 0], [2.5, 0, 0], [52.0, 0, 0], [100.5, 0, 0], [300.0, 0, 0]])
    p = np.array([0.3, 0.6, 0.1, 0.95, 0.8])
    rows = nodule_stages("s", nodules, diameters, seg_max, 0.5, candidates, p,
                         [("solid", "free"), ("ground-glass", "juxtapleural"), ("solid", "free"), ("part-solid", "")])
    # nodule 0: two candidates within 3 mm (best 0.6, rank 3 after 0.95 and 0.8); nodule 1: one at 0.1 (rank 5);
    # nodule 2: a candidate although not flagged; nodule 3: flagged but no candidate within 10 mm
    assert [r.flagged for r in rows] == [True, True, False, True]
    assert [r.has_candidate for r in rows] == [True, True, True, False]
    assert_allclose([r.best_p for r in rows][:3], [0.6, 0.1, 0.95])
    assert np.isnan(rows[3].best_p)
    assert [r.rank for r in rows] == [3, 5, 1, 0]
    summary = summarize_stages(rows, 0.5)
    assert (summary.total.n, summary.total.flagged, summary.total.with_candidate, summary.total.detected) == (4, 3, 3, 2)
    assert summary.flagged_with_candidate == 2
    assert_allclose([summary.segmentation_recall, summary.grouping_recall, summary.classification_recall],
                    [3 / 4, 2 / 3, 2 / 3])
    assert list(summary.by_size) == ["3-5 mm", "5-8 mm", "8-15 mm", ">15 mm"]
    assert summary.by_size["5-8 mm"].detected == 1 and summary.by_size[">15 mm"].detected == 0
    assert summary.by_kind["solid"].n == 2 and summary.by_kind["solid"].sensitivity == 1.0
    assert summary.by_location["juxtapleural"].sensitivity == 0.0 and "" not in summary.by_location
    data = summary.to_dict()
    assert data["total"]["detected"] == 2 and data["nodules"][3]["best_p"] is None and data["nodules"][3]["rank"] == 0


def test_unknown_segmentation_counts_in_neither_recall():
    rows = nodule_stages("s", np.zeros((1, 3)), np.array([6.0]), np.array([np.nan]), 0.5, np.zeros((0, 3)), np.zeros(0))
    summary = summarize_stages(rows)
    assert rows[0].flagged is None and summary.total.recorded == 0
    assert np.isnan(summary.segmentation_recall) and np.isnan(summary.grouping_recall)
    assert summary.by_kind == {} and summary.by_location == {}


def test_attributes_file_is_read_and_matched_by_centre(tmp_path):
    assert read_attributes(tmp_path) == {}
    (tmp_path / "annotations_attributes.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm,kind,location\n"
        "1.2,10.0,20.0,30.0,6.0,ground-glass,juxtavascular\n"
    )
    listed = read_attributes(tmp_path)
    assert list(listed) == ["1.2"]
    assert attributes_for(np.array([[10.0, 20.0, 30.0], [0.0, 0.0, 0.0]]), listed["1.2"]) == [
        ("ground-glass", "juxtavascular"), ("", "")]
    (tmp_path / "annotations_attributes.csv").write_text("seriesuid,coordX\n1.2,abc\n")
    with pytest.raises(DatasetError):
        read_attributes(tmp_path)
