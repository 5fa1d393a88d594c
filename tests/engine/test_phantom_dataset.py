"""The LUNA16-format dataset writer, its CLI, and the gallery command."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from engine.io.ct import load_ct
from engine.luna import LunaIndex
from engine.phantom import generate_series, write_dataset
from engine.phantom.dataset import MALIGNANCY_HEADER, NoduleMix, series_seeds, write_mhd
from engine.phantom.series import plan_series
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
    assert not [p for p in root.rglob(".*")], "no temporary file or folder left behind"
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


def test_nodule_mix_cycles_kinds_and_draws_diameters_in_range():
    mix = NoduleMix(("ground-glass", "part-solid", "solid"), per_series=2, diameter_mm=(8.0, 20.0))
    first, second = mix.requests(0, 11), mix.requests(1, 12)
    assert [r["kind"] for r in first + second] == ["ground-glass", "part-solid", "solid", "ground-glass"]
    assert all(8.0 <= r["diameter_mm"] <= 20.0 for r in first + second)
    assert mix.requests(0, 11) == first  # seeded by the series seed
    assert "diameter_mm" not in NoduleMix(("solid",)).requests(0, 11)[0]
    for bad in [dict(kinds=()), dict(kinds=("glassy",)), dict(kinds=("solid",), per_series=0),
                dict(kinds=("solid",), diameter_mm=(20.0, 8.0)), dict(kinds=("solid",), diameter_mm=(1.0, 8.0))]:
        with pytest.raises(ValueError):
            NoduleMix(**bad)


def test_nodule_mix_cycles_locations_with_the_kinds():
    mix = NoduleMix(("solid",), per_series=3, locations=("juxtapleural", "juxtavascular"))
    got = [r["location"] for i in range(2) for r in mix.requests(i, 40 + i)]
    assert got == ["juxtapleural", "juxtavascular"] * 3
    assert "location" not in NoduleMix(("solid",)).requests(0, 11)[0]
    for bad in [("pleura",), ()]:
        with pytest.raises(ValueError, match="location"):
            NoduleMix(("solid",), locations=bad)


def test_forced_locations_reach_the_attributes_csv(tmp_path: Path):
    mix = NoduleMix(("solid",), per_series=2, diameter_mm=(6.0, 8.0), locations=("juxtapleural",))
    write_dataset(tmp_path / "ds", 1, seed=8, preset="small", mix=mix)
    with (tmp_path / "ds" / "annotations_attributes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {r["location"] for r in rows} == {"juxtapleural"}


def _uids(root: Path) -> list[str]:
    return (root / "seriesuids.csv").read_text().split()


def _csv_uids(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["seriesuid"] for row in csv.DictReader(handle)]


def test_append_keeps_the_dataset_and_adds_mixed_series(tmp_path: Path):
    root = tmp_path / "ds"
    base = write_dataset(root, 2, seed=5, preset="small")
    before = {name: _csv_uids(root / name) for name in ("annotations.csv", "candidates.csv")}
    mix = NoduleMix(("ground-glass",), per_series=2, diameter_mm=(10.0, 14.0))
    extra = write_dataset(root, 2, seed=6, preset="small", mix=mix, append=True)

    assert _uids(root) == list(base.series_uids + extra.series_uids)
    assert not set(base.series_uids) & set(extra.series_uids)
    ann = _csv_uids(root / "annotations.csv")
    assert ann[: len(before["annotations.csv"])] == before["annotations.csv"]
    assert len(ann) == base.n_nodules + extra.n_nodules == base.n_nodules + 4
    assert len(_csv_uids(root / "candidates.csv")) == len(before["candidates.csv"]) + extra.n_candidates
    # the new series went to the existing subsets, continuing the round robin
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["subset0", "subset1"]
    for uid in extra.series_uids:
        assert len(list(root.glob(f"subset*/{uid}.mhd"))) == 1
    index = LunaIndex.open(root, require_candidates=True)
    assert set(index.series_uids) == set(base.series_uids + extra.series_uids)
    # the forced nodules are the ones written
    for i, seed in enumerate(extra.series_seeds):
        plan = plan_series(seed, "small", nodules=mix.requests(i, seed))
        assert [n.look.kind for n in plan.nodules] == ["ground-glass", "ground-glass"]
        assert all(10.0 <= n.look.diameter_mm <= 14.0 for n in plan.nodules)

    # appending the same series again replaces their rows instead of doubling them
    write_dataset(root, 2, seed=6, preset="small", mix=mix, append=True)
    assert _uids(root) == list(base.series_uids + extra.series_uids)
    assert len(_csv_uids(root / "annotations.csv")) == base.n_nodules + extra.n_nodules


def test_demo_data_command_mix_options(tmp_path: Path, capsys):
    from main import run_command

    out = tmp_path / "ds"
    args = ["demo-data", str(out), "--series", "1", "--seed", "4", "--preset", "small"]
    assert run_command(args) == 0
    assert run_command([*args[:-4], "--seed", "8", "--preset", "small", "--nodule-kinds", "part-solid",
                        "--nodules-per-series", "1", "--append"]) == 0
    assert "appended 1 small series" in capsys.readouterr().out
    assert len(_uids(out)) == 2
    assert run_command([*args, "--nodule-kinds", "glassy"]) == 2
    assert "unknown nodule kind(s) glassy" in capsys.readouterr().err
    assert run_command([*args, "--nodule-diameters", "8,20"]) == 2
    assert run_command([*args, "--nodules-per-series", "3"]) == 2 and "need --nodule-kinds" in capsys.readouterr().err
    assert run_command([*args, "--nodule-kinds", "solid", "--nodule-diameters", "8"]) == 2
    assert "LOW,HIGH" in capsys.readouterr().err


def test_gallery_command(tmp_path: Path, capsys):
    from main import run_command

    assert run_command(["gallery", str(tmp_path / "g"), "--seed", "3", "--preset", "small"]) == 0
    pngs = sorted((tmp_path / "g").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"overview.png", "candidates.png"} <= names
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tmp_path / "g" / "overview.png") in capsys.readouterr().out


def test_append_to_an_unreadable_dataset_fails_before_writing(tmp_path: Path):
    from engine.errors import DatasetError

    root = tmp_path / "ds"
    root.mkdir()
    (root / "candidates.csv").write_bytes(b"seriesuid,coordX\n\xff\xfe broken\n")
    with pytest.raises(DatasetError, match="candidates.csv"):
        write_dataset(root, 1, seed=6, preset="small", append=True)
    assert not list(root.rglob("*.mhd"))
    assert (root / "candidates.csv").read_bytes().endswith(b"broken\n")
