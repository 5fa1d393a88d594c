"""The LUNA16-format dataset writer, its CLI, and the gallery command."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from engine.ct import load_ct
from engine.luna import LunaIndex
from engine.phantom import generate_series, write_dataset
from engine.phantom.dataset import MALIGNANCY_HEADER, series_seeds, write_mhd
from engine.phantom.tissues import Tissue


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("phantoms")
    calls: list[tuple[float, str]] = []
    summary = write_dataset(root, 3, seed=21, preset="small", progress=lambda f, t: calls.append((f, t)))
    return root, summary, calls


def test_layout_and_csv_files(dataset):
    root, summary, calls = dataset
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["subset0", "subset1", "subset2"]
    for uid in summary.series_uids:
        assert uid.startswith("2.25.")
        assert len(list(root.glob(f"subset*/{uid}.mhd"))) == 1
        assert len(list(root.glob(f"subset*/{uid}.raw"))) == 1
    assert not list(root.rglob(".tmp*"))
    with (root / "annotations_with_malignancy.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == MALIGNANCY_HEADER
        rows = list(reader)
    assert len(rows) == summary.n_nodules
    for row in rows:
        ratings = ast.literal_eval(row["mal_details"])
        assert row["mal_details"] == str(list(ratings))  # "[4, 2, 4, 2]"
        assert int(row["len_mal_details"]) == len(ratings)
        assert (row["mal_bool"] == "True") == (sum(r >= 4 for r in ratings) >= 2)
        assert float(row["bboxLowX"]) < float(row["coordX"]) < float(row["bboxHighX"])
    uids = (root / "seriesuids.csv").read_text().split()
    assert uids == list(summary.series_uids)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_luna_index_reads_the_dataset(dataset):
    root, summary, _ = dataset
    index = LunaIndex.open(root, require_candidates=True)
    assert set(index.series_uids) == set(summary.series_uids)
    assert index.has_malignancy
    assert len(index.annotations) == summary.n_nodules
    assert sum(a.is_malignant for a in index.annotations) == summary.n_malignant
    assert len(index.excluded) == summary.n_excluded
    negatives = [c for c in index.candidates if not c.is_nodule]
    assert len(negatives) == summary.n_candidates - summary.n_positive_candidates
    split = index.split(val_stride=2)
    assert set(split.train) | set(split.val) == set(summary.series_uids)


def test_written_series_equal_the_generated_ones(dataset):
    root, summary, _ = dataset
    uid, seed = summary.series_uids[1], summary.series_seeds[1]
    assert seed == series_seeds(21, 3)[1]
    ct, truth = generate_series(seed, "small")
    loaded = load_ct(root / "subset1" / f"{uid}.mhd")
    assert loaded.series_uid == uid == ct.series_uid
    assert np.array_equal(loaded.hu, ct.hu)
    assert loaded.geometry.origin_xyz == pytest.approx(ct.geometry.origin_xyz, abs=1e-4)
    assert loaded.geometry.spacing_xyz == pytest.approx(ct.geometry.spacing_xyz, abs=1e-6)
    assert loaded.geometry.direction == pytest.approx(ct.geometry.direction)


def test_simpleitk_finds_the_nodules_in_a_flipped_file(tmp_path: Path):
    import SimpleITK as sitk

    ct, truth = generate_series(12, "small", flip_xyz=(True, True, True), nodules=[{"diameter_mm": 12.0}] * 2)
    path = write_mhd(ct, tmp_path)
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayViewFromImage(image)
    for nodule in truth.nodules:
        col, row, index = image.TransformPhysicalPointToIndex(nodule.center_xyz)
        assert (index, row, col) == nodule.center_irc
        assert truth.labels[index, row, col] == Tissue.NODULE
        assert array[index, row, col] == ct.hu[index, row, col]


def test_demo_data_command(tmp_path: Path, capsys):
    from main import run_command

    out = tmp_path / "ds"
    assert run_command(["demo-data", str(out), "--series", "1", "--seed", "4", "--preset", "small"]) == 0
    assert len(list(out.glob("subset0/*.mhd"))) == 1
    assert (out / "candidates.csv").is_file()
    text = capsys.readouterr().out
    assert "wrote 1 small series" in text and "per thousand" in text


def test_gallery_command(tmp_path: Path, capsys):
    from main import run_command

    assert run_command(["gallery", str(tmp_path / "g"), "--seed", "3", "--preset", "small"]) == 0
    pngs = sorted((tmp_path / "g").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"overview.png", "candidates.png"} <= names
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tmp_path / "g" / "overview.png") in capsys.readouterr().out
