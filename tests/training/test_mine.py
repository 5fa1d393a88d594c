"""Hard-negative mining: which detections become negatives, the CSV written, and training reading it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.errors import DatasetError
from engine.luna import LunaIndex
from training.mine import avoid_spheres, hard_negatives, matched_positives, mine, write_candidates


def test_hard_negatives_keep_the_top_scores_outside_the_avoided_spheres():
    centres = np.array([[0, 0, 0], [3, 0, 0], [20, 0, 0], [0, 30, 0], [50, 50, 50]], float)
    p = np.array([0.99, 0.98, 0.5, 0.9, 0.7])
    avoid = np.array([[0, 0, 0]], float)
    # a 8 mm nodule at the origin: nothing within 8 mm (one diameter) is a negative
    kept = hard_negatives(centres, p, avoid, np.array([8.0]), per_series=2)
    assert kept.tolist() == [[0, 30, 0], [50, 50, 50]]
    assert len(hard_negatives(centres, p, avoid, np.array([8.0]), per_series=10)) == 3
    assert hard_negatives(centres, p, np.zeros((0, 3)), np.zeros(0), per_series=1).tolist() == [[0, 0, 0]]
    assert hard_negatives(np.zeros((0, 3)), np.zeros(0), avoid, np.array([8.0]), per_series=5).shape == (0, 3)


@dataclass
class _Finding:
    center_xyz: tuple[float, float, float]
    diameter_mm: float


def test_avoid_spheres_cover_nodules_by_a_diameter_and_excluded_findings():
    centres, radii = avoid_spheres([_Finding((1, 2, 3), 12.0), _Finding((0, 0, 0), 3.5)], [_Finding((9, 9, 9), -1.0)])
    assert centres.tolist() == [[1, 2, 3], [0, 0, 0], [9, 9, 9]]
    assert radii.tolist() == [12.0, 5.0, 10.0]  # at least 5 mm; 10 mm around a finding without diameter


def test_write_candidates_keeps_positives_samples_negatives_and_appends(tmp_path: Path):
    source = tmp_path / "candidates.csv"
    rows = [["a", "1.0", "2.0", "3.0", "1"]] + [["a", f"{i}", "0", "0", "0"] for i in range(200)]
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["seriesuid", "coordX", "coordY", "coordZ", "class"], *rows])
    mined = {"a": np.array([[0.1, 0.2, 0.3]]), "b": np.array([[4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])}

    out = tmp_path / "out" / "mined.csv"
    kept, added = write_candidates(source, mined, out)
    table = list(csv.reader(out.open()))
    assert (kept, added) == (201, 3) and table[1:202] == rows
    assert table[202:] == [["a", "0.1", "0.2", "0.3", "0"], ["b", "4.0", "5.0", "6.0", "0"], ["b", "7.0", "8.0", "9.0", "0"]]

    kept, _ = write_candidates(source, mined, out, keep_negatives=0.25, seed=3)
    table = list(csv.reader(out.open()))
    assert table[1] == rows[0]  # the nodule row is always kept
    assert 1 + 25 <= kept <= 1 + 80 and len(table) == 1 + kept + 3
    again, _ = write_candidates(source, mined, tmp_path / "again.csv", keep_negatives=0.25, seed=3)
    assert again == kept and list(csv.reader((tmp_path / "again.csv").open())) == table
    assert sorted(p.name for p in out.parent.iterdir()) == ["mined.csv"]
    # only the named (training) series are thinned
    kept, _ = write_candidates(source, mined, out, keep_negatives=0.25, seed=3, thin_series={"b"})
    assert kept == 201


@dataclass
class _Candidate:
    center_xyz: tuple[float, float, float]
    p_nodule: float


@dataclass
class _Result:
    candidates: list[_Candidate]


def test_mine_runs_the_detector_per_series_and_reads_back_as_training_negatives(tiny_dataset, tmp_path: Path):
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    train = list(index.split(val_stride=3).train)
    seen = []

    def detect(ct):
        seen.append(ct.series_uid)
        nodule = index.annotations_for(ct.series_uid)[0].center_xyz
        on_nodule = _Candidate((nodule[0] + 1.0, nodule[1], nodule[2]), 0.99)
        away = [_Candidate((nodule[0] + 40 + i, nodule[1], nodule[2]), 0.5 + i / 10) for i in range(3)]
        return _Result([on_nodule, *away])

    done = []
    mined = mine(index, train[:2], detect, per_series=2, progress=lambda d, t, uid: done.append((d, t)))
    assert seen == train[:2] and done == [(1, 2), (2, 2)]
    for uid in train[:2]:
        nodule = np.array(index.annotations_for(uid)[0].center_xyz)
        assert mined.negatives[uid].shape == (2, 3)
        assert np.allclose(mined.negatives[uid][:, 0] - nodule[0], [42, 41])  # the two best, never the one on the nodule
        assert np.allclose(mined.positives[uid], [nodule + [1, 0, 0]])  # the detection on the nodule, as the detector centred it

    out = tmp_path / "mined.csv"
    write_candidates(tiny_dataset.root / "candidates.csv", mined.negatives, out)
    extended = LunaIndex.open(tiny_dataset.root, candidates=out)
    assert len(extended.candidates) == len(index.candidates) + 4
    write_candidates(tiny_dataset.root / "candidates.csv", mined.negatives, out, positives=mined.positives)
    extended = LunaIndex.open(tiny_dataset.root, candidates=out, candidate_positives=True)
    assert len(extended.candidates) == len(index.candidates) + 6
    assert sum(c.is_nodule for c in extended.candidates) == sum(c.is_nodule for c in index.candidates) + 2
    with pytest.raises(DatasetError, match="missing.csv"):
        LunaIndex.open(tiny_dataset.root, candidates=tmp_path / "missing.csv")


def test_matched_positives_lie_inside_a_nodule_radius():
    class _A:
        def __init__(self, xyz, d):
            self.center_xyz, self.diameter_mm = xyz, d

    nodules = [_A((0.0, 0.0, 0.0), 10.0), _A((100.0, 0.0, 0.0), 4.0)]
    dets = np.array([[4.9, 0, 0], [5.1, 0, 0], [101.9, 0, 0], [102.1, 0, 0], [50, 0, 0]])
    assert np.allclose(matched_positives(dets, nodules), dets[[0, 2]])  # strictly closer than half a diameter
    assert matched_positives(dets, []).shape == (0, 3)
    assert matched_positives(np.zeros((0, 3)), nodules).shape == (0, 3)


def test_training_cli_takes_a_candidates_file(tiny_dataset, tmp_path: Path):
    from training.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        ["classifier", "--data", str(tiny_dataset.root), "--candidates", "mined.csv", "--run-dir", str(tmp_path / "r")]
    )
    config, resume = config_from_args("classifier", args)
    assert not resume and config.candidates == str(Path("mined.csv").resolve())


def test_mine_negatives_command_with_the_demo_models(tiny_dataset, tmp_path: Path, capsys):
    from training.cli import main

    out = tmp_path / "mined.csv"
    args = ["mine-negatives", "--data", str(tiny_dataset.root), "--out", str(out), "--per-series", "3",
            "--max-series", "2", "--device", "cpu"]
    assert main(args) == 0
    assert "2 series mined" in capsys.readouterr().out
    index = LunaIndex.open(tiny_dataset.root)
    original = len(list(csv.reader((tiny_dataset.root / "candidates.csv").open()))) - 1
    rows = list(csv.reader(out.open()))[1:]
    assert original <= len(rows) <= original + 6
    assert {r[0] for r in rows[original:]} <= set(index.split(val_stride=10).train[:2])
    assert main([*args, "--keep-negatives", "2"]) == 2 and "keep-negatives" in capsys.readouterr().err


def test_mine_negatives_series_list_mines_and_thins_only_those_series(tiny_dataset, tmp_path: Path, capsys):
    from training.cli import main

    train = LunaIndex.open(tiny_dataset.root).split(val_stride=3).train
    listed = tmp_path / "new.txt"
    listed.write_text(f"{train[1]}\n\n{train[3]}\n")
    out = tmp_path / "mined.csv"
    args = ["mine-negatives", "--data", str(tiny_dataset.root), "--out", str(out), "--per-series", "3",
            "--val-stride", "3", "--series", str(listed), "--keep-negatives", "0", "--device", "cpu"]
    assert main(args) == 0
    assert "2 series mined" in capsys.readouterr().out
    with (tiny_dataset.root / "candidates.csv").open(newline="") as handle:
        original = list(csv.DictReader(handle))
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    negatives = lambda rs, uid: sum(r["seriesuid"] == uid and r["class"] == "0" for r in rs)  # noqa: E731
    unlisted = [u for u in LunaIndex.open(tiny_dataset.root).series_uids if u not in (train[1], train[3])]
    for uid in unlisted:  # untouched: every original negative kept, nothing mined
        assert negatives(rows, uid) == negatives(original, uid) > 0
    for uid in (train[1], train[3]):  # original negatives all thinned away; at most 3 mined ones
        assert negatives(rows, uid) <= 3
    assert sum(r["class"] == "1" for r in rows) == sum(r["class"] == "1" for r in original)

    listed.write_text("2.25.not-there\n")
    assert main(args) == 2 and "not in the dataset" in capsys.readouterr().err
    listed.write_text("\n")
    assert main(args) == 2 and "empty" in capsys.readouterr().err
