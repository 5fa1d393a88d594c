"""The per-series cache of ``evaluate``: round trip, atomic writes, when a file is reused."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from numpy.testing import assert_array_equal

from engine.evaluation.cache import SeriesDetections, load_series, save_series, series_path

ANN = np.array([[1.0, 2.0, 3.0]])


def record(annotation_p=None) -> SeriesDetections:
    cands = [
        SimpleNamespace(center_xyz=(1.5, -2.0, 3.25), center_irc=(3.0, 2.0, 1.0), p_nodule=0.75, p_malignant=None,
                        diameter_mm=5.5, voxel_count=40),
        SimpleNamespace(center_xyz=(0.1, 0.2, 0.3), p_nodule=1e-9),  # a minimal candidate
    ]
    return SeriesDetections.from_candidates("1.2.3", "m1", cands, ANN, annotation_p, seconds=1.25)


def test_round_trip_keeps_values_and_missing_ones(tmp_path: Path) -> None:
    rec = record(annotation_p=[0.4])
    path = save_series(tmp_path, rec)
    assert path == series_path(tmp_path, "1.2.3") and path.parent.name == "series"
    loaded, reason = load_series(tmp_path, "1.2.3", "m1", ANN, need_annotation_scores=True)
    assert reason == "" and loaded is not None
    assert_array_equal(loaded.center_xyz, [[1.5, -2.0, 3.25], [0.1, 0.2, 0.3]])
    assert_array_equal(loaded.center_irc[0], [3.0, 2.0, 1.0]) and np.isnan(loaded.center_irc[1]).all()
    assert loaded.p_nodule.tolist() == [0.75, 1e-9]
    assert np.isnan(loaded.p_malignant).all()
    assert loaded.diameter_mm.tolist() == [5.5, 0.0] and loaded.voxel_count.tolist() == [40, 0]
    assert loaded.annotation_p_malignant.tolist() == [0.4] and loaded.annotations_classified
    assert loaded.seconds == 1.25 and loaded.n_candidates == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_when_a_file_is_not_reused(tmp_path: Path) -> None:
    assert load_series(tmp_path, "1.2.3", "m1", ANN, False) == (None, "")
    save_series(tmp_path, record())
    assert load_series(tmp_path, "1.2.3", "m2", ANN, False) == (None, "made by other models")
    assert load_series(tmp_path, "1.2.3", "m1", ANN + 1, False) == (None, "made with other annotations")
    # lacking malignancy at the annotations is no fault, just not enough for this run
    assert load_series(tmp_path, "1.2.3", "m1", ANN, True) == (None, "")
    assert load_series(tmp_path, "1.2.3", "m1", ANN, False)[0] is not None
    path = series_path(tmp_path, "1.2.3")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 0}))
    assert load_series(tmp_path, "1.2.3", "m1", ANN, False) == (None, "written by another version")
    data["candidates"]["p_nodule"] = [0.5]  # columns of different lengths
    path.write_text(json.dumps(data))
    assert load_series(tmp_path, "1.2.3", "m1", ANN, False)[1].startswith("unreadable")
