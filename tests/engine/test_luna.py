"""The LUNA16 index: real CSVs from the book, on-disk filtering, the split, CSV errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from engine.errors import CsvFormatError, DatasetError
from engine.luna import LunaIndex, iter_candidates, read_annotations, split_series


def test_reads_real_annotations(book_dir: Path) -> None:
    plain = read_annotations(book_dir / "annotations.csv")
    assert len(plain) == 1186
    assert len({a.series_uid for a in plain}) == 601
    assert all(a.is_malignant is None for a in plain)
    mal = read_annotations(book_dir / "annotations_with_malignancy.csv")
    assert len(mal) == 1182
    assert sum(a.is_malignant for a in mal) == 378
    first = mal[0]
    assert first.mal_details == (4, 2, 4, 2)
    assert first.diameter_mm == pytest.approx(5.651470635)
    assert first.bbox_low_xyz is not None and first.bbox_low_xyz[0] == pytest.approx(-131.89648)
    # malignant = at least two ratings >= 4, as the file says
    agree = sum(a.is_malignant == (sum(r >= 4 for r in a.mal_details) >= 2) for a in mal)
    assert agree == len(mal)


def _dataset(root: Path, uids: list[str]) -> None:
    for k, uid in enumerate(uids):
        sub = root / f"subset{k % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        image = sitk.GetImageFromArray(np.full((4, 5, 6), -1000, np.int16))
        sitk.WriteImage(image, str(sub / f"{uid}.mhd"))
    (root / "annotations_with_malignancy.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,mal_details,bboxLowX,bboxLowY,bboxLowZ,"
        "bboxHighX,bboxHighY,bboxHighZ,len_mal_details\n"
        f'{uids[0]},1.0,2.0,3.0,4.5,False,"[1, 2]",0,0,0,2,4,6,2\n'
        f'{uids[1]},-1.0,-2.0,-3.0,12.0,True,"[4, 5, 3]",-2,-4,-6,0,0,0,3\n'
        '9.9.9,0,0,0,20.0,True,"[5, 5]",0,0,0,1,1,1,2\n'
    )
    (root / "candidates.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,class\n"
        f"{uids[0]},10,20,30,0\n{uids[0]},1,2,3,1\n{uids[1]},5,5,5,0\n9.9.9,1,1,1,0\n{uids[2]},7,8,9,0\n"
    )
    (root / "annotations_excluded.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{uids[2]},3,3,3,-1\n"
    )


def test_index_keeps_only_series_on_disk(tmp_path: Path) -> None:
    uids = ["1.2.5", "1.2.3", "1.2.4"]
    _dataset(tmp_path, uids)
    index = LunaIndex.open(tmp_path)
    assert index.series_uids == ("1.2.3", "1.2.4", "1.2.5")
    assert index.has_malignancy
    assert len(index.annotations) == 2  # 9.9.9 is not on disk
    nodules = [c for c in index.candidates if c.is_nodule]
    assert [c.diameter_mm for c in nodules] == [12.0, 4.5]  # largest first
    assert nodules[0].is_malignant and not nodules[1].is_malignant
    negatives = [c for c in index.candidates if not c.is_nodule]
    assert sorted(c.center_xyz for c in negatives) == [(5.0, 5.0, 5.0), (7.0, 8.0, 9.0), (10.0, 20.0, 30.0)]
    assert len(index.excluded_for("1.2.4")) == 1
    assert index.load("1.2.3").shape == (4, 5, 6)


def test_split_is_by_series_and_deterministic() -> None:
    uids = [f"1.2.{k}" for k in range(25)]
    split = split_series(reversed(uids), val_stride=10)
    ordered = sorted(uids)
    assert split.val == tuple(ordered[::10])
    assert set(split.train) == set(ordered) - set(split.val)
    assert split == split_series(uids, val_stride=10)
    with_test = split_series(uids, val_stride=5, test_stride=4)
    assert not set(with_test.test) & set(with_test.val)
    assert not set(with_test.test) & set(with_test.train)
    assert len(with_test.train) + len(with_test.val) + len(with_test.test) == 25
    assert len(with_test.of("all")) == 25


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no series"):
        LunaIndex.open(tmp_path)
    (tmp_path / "subset0").mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16)), str(tmp_path / "subset0" / "1.2.mhd"))
    with pytest.raises(DatasetError, match="neither annotations.csv"):
        LunaIndex.open(tmp_path)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("seriesuid,coordX,coordY,diameter_mm\n1.2,1,2,3\n")
    with pytest.raises(CsvFormatError, match="missing column\\(s\\) coordZ") as info:
        read_annotations(path)
    assert "annotations.csv" in str(info.value)


def test_csv_malformed_number(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    path.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2,1,2,3,0\n1.2,1,abc,3,0\n")
    with pytest.raises(CsvFormatError, match="line 3: column coordY holds 'abc'"):
        list(iter_candidates(path))


def test_csv_bad_class_and_bool(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    path.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2,1,2,3,7\n")
    with pytest.raises(CsvFormatError, match="expected 0 or 1"):
        list(iter_candidates(path))
    mal = tmp_path / "annotations_with_malignancy.csv"
    mal.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool\n1.2,1,2,3,4,maybe\n")
    with pytest.raises(CsvFormatError, match="mal_bool"):
        read_annotations(mal)


def test_candidate_positives_inside_a_nodule_carry_its_labels(tmp_path: Path) -> None:
    uids = ["1.2.5", "1.2.3", "1.2.4"]
    _dataset(tmp_path, uids)
    with (tmp_path / "candidates.csv").open("a") as handle:
        # 1.2.5's nodule: centre (1, 2, 3), 4.5 mm; 1.2.3's: (-1, -2, -3), 12 mm
        handle.write(f"{uids[0]},2.0,2.0,3.0,1\n{uids[0]},3.3,2.0,3.0,1\n{uids[1]},-1.0,-2.0,2.9,1\n{uids[2]},7,8,9,1\n")
    plain = LunaIndex.open(tmp_path)
    assert sum(c.is_nodule for c in plain.candidates) == 2  # class-1 rows are ignored by default
    index = LunaIndex.open(tmp_path, candidate_positives=True)
    nodules = [c for c in index.candidates if c.is_nodule]
    # kept: 1 mm from the 4.5 mm nodule, 5.9 mm from the 12 mm one; dropped: at a centre, 2.3 mm of 4.5, in no nodule
    assert [(c.series_uid, c.center_xyz, c.diameter_mm, c.is_malignant) for c in nodules] == [
        (uids[1], (-1.0, -2.0, -3.0), 12.0, True),
        (uids[1], (-1.0, -2.0, 2.9), 12.0, True),
        (uids[0], (1.0, 2.0, 3.0), 4.5, False),
        (uids[0], (2.0, 2.0, 3.0), 4.5, False),
    ]
    assert len(index.candidates) - len(nodules) == len(plain.candidates) - 2  # negatives unchanged


def test_index_without_candidates(tmp_path: Path) -> None:
    _dataset(tmp_path, ["1.2.5", "1.2.3", "1.2.4"])
    index = LunaIndex.open(tmp_path, read_candidates=False)
    assert all(c.is_nodule for c in index.candidates) and len(index.candidates) == 2
