"""LUNA16 submission CSV and the JSON findings file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.export import findings_to_json, luna_rows, write_findings_json, write_luna_csv
from engine.geometry import Geometry


def _result() -> DetectionResult:
    geometry = Geometry((-10.0, 20.0, -300.0), (0.5, 0.6, 2.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    candidates = (
        Candidate(1, (2.0, 3.0, 4.0), (-12.0, 21.8, -296.0), 0.2, 0.9, 30, 3.5, ((1, 2, 3), (4, 5, 6))),
        Candidate(2, (5.5, 6.0, 7.25), (-13.625, 23.6, -289.0), 0.85, 0.3, 200, 7.1, ((4, 4, 5), (8, 9, 10))),
        Candidate(3, (1.0, 1.0, 1.0), (-10.5, 20.6, -298.0), 0.6, 0.7, 50, 4.0, ((0, 0, 0), (3, 3, 3))),
    )
    return DetectionResult(
        series_uid="1.2.3", shape=(10, 12, 14), geometry=geometry, candidates=candidates,
        seg_probability=np.zeros((10, 12, 14), np.uint8), grouping=GroupingSettings(),
        timings={"segmentation": 1.0, "total": 2.0}, device="cpu",
        model_ids={"segmentation": "segmentation:abc", "classifier": "classifier:def", "malignancy": "malignancy:012"},
    )


def test_luna_csv_rows_sorted_and_capped(tmp_path):
    result = _result()
    rows = luna_rows(result)
    assert [r[4] for r in rows] == [0.85, 0.6, 0.2]
    assert rows[0] == ("1.2.3", -13.625, 23.6, -289.0, 0.85)
    assert len(luna_rows(result, max_marks=2)) == 2
    path = write_luna_csv(rows, tmp_path / "sub" / "submission.csv")
    table = list(csv.reader(path.open()))
    assert table[0] == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    assert table[1] == ["1.2.3", "-13.6250", "23.6000", "-289.0000", "0.85"]
    assert [p.name for p in path.parent.iterdir()] == ["submission.csv"]
    # probabilities are written exactly: two marks 6e-8 apart near 1.0 stay ordered, not tied
    close = [("1.2.3", 0, 0, 0, 0.99999994), ("1.2.3", 0, 0, 0, 0.9999999)]
    table = list(csv.reader(write_luna_csv(close, tmp_path / "close.csv").open()))
    assert [float(r[4]) for r in table[1:]] == [0.99999994, 0.9999999]


def test_findings_json(tmp_path):
    result = _result()
    payload = findings_to_json(result, nodule_threshold=0.5, malignancy_threshold=0.5, source="/data/scan.mhd")
    assert payload["coordinate_system"] == "LPS" and payload["units"] == "mm"
    assert "not for clinical use" in payload["note"]
    assert payload["model_ids"]["malignancy"] == "malignancy:012"
    assert payload["n_candidates"] == 3 and payload["n_nodules"] == 2
    by_id = {c["id"]: c for c in payload["candidates"]}
    assert by_id[1]["is_nodule"] is False and by_id[1]["is_malignant"] is False  # malignant only if a nodule
    assert by_id[2]["is_nodule"] is True and by_id[2]["is_malignant"] is False
    assert by_id[3]["is_malignant"] is True
    assert by_id[2]["center_irc"] == [5.5, 6.0, 7.25] and by_id[2]["center_xyz_mm"] == [-13.625, 23.6, -289.0]
    assert by_id[2]["slice"] == 6 and by_id[2]["bbox_irc"] == {"lo": [4, 4, 5], "hi": [8, 9, 10]}
    assert payload["direction"][0] == -1.0 and payload["source"] == "/data/scan.mhd"
    path = write_findings_json(result, tmp_path / "f.json", note="demo model trained on synthetic data")
    loaded = json.loads(path.read_text())
    assert loaded["note"] == "demo model trained on synthetic data"
    assert loaded["candidates"] == json.loads(json.dumps(findings_to_json(result)))["candidates"]


def test_result_helpers():
    result = _result()
    assert [c.id for c in result.nodules(0.5)] == [2, 3]
    assert result.candidates[1].slice_index == 6
    assert result.probability_slice(0).dtype == np.float32
    with pytest.raises(ValueError, match="does not match"):
        DetectionResult("x", (2, 2, 2), Geometry(), (), np.zeros((2, 2, 3), np.uint8), GroupingSettings(), {}, "cpu", {})
