"""DICOM folders: listing series, choosing one, slice checks, refusing bad series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from engine.io.ct import load_ct
from engine.io.dicom import list_dicom_series
from engine.errors import ModalityError, NoDicomSeriesError, SeriesChoiceError, SliceSpacingError
from tests.dicom_writer import write_dicom_series


def _volume(slices: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1200, size=(slices, 10, 12)).astype(np.int16)


def test_load_series_round_trip(tmp_path: Path) -> None:
    hu = _volume()
    write_dicom_series(tmp_path, hu, spacing_xyz=(0.6, 0.65, 2.5), origin_xyz=(-90.0, -110.0, -250.0))
    ct = load_ct(tmp_path)
    assert_array_equal(ct.hu, hu)
    assert_allclose(ct.geometry.spacing_xyz, (0.6, 0.65, 2.5), atol=1e-5)
    assert_allclose(ct.geometry.origin_xyz, (-90.0, -110.0, -250.0), atol=1e-4)
    assert ct.series_uid == "1.2.826.0.1.3680043.2.1125.7.1"
    assert ct.modality == "CT" and ct.warnings == () and ct.notes == ()
    assert ct.header["SeriesDescription"] == "test series"


def test_one_file_opens_its_series(tmp_path: Path) -> None:
    files = write_dicom_series(tmp_path, _volume())
    assert load_ct(files[2]).shape == (6, 10, 12)


def test_two_series_listed_and_chosen(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, _volume(6), series_uid="1.2.3.1", description="thin", prefix="a")
    write_dicom_series(tmp_path, _volume(4, seed=1), series_uid="1.2.3.2", description="thick", prefix="b")
    series = list_dicom_series(tmp_path)
    assert [(s.uid, s.slice_count, s.modality, s.description) for s in series] == [
        ("1.2.3.1", 6, "CT", "thin"),
        ("1.2.3.2", 4, "CT", "thick"),
    ]
    assert series[0].slice_thickness_mm == pytest.approx(2.0)
    default = load_ct(tmp_path)
    assert default.series_uid == "1.2.3.1" and default.shape[0] == 6
    assert "2 series" in default.notes[0] and "1.2.3.1" in default.notes[0]
    chosen = load_ct(tmp_path, series_uid="1.2.3.2")
    assert chosen.shape[0] == 4 and chosen.notes == ()
    with pytest.raises(SeriesChoiceError, match="1.2.3.9"):
        load_ct(tmp_path, series_uid="1.2.3.9")


def test_ct_preferred_over_larger_non_ct(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, _volume(8), series_uid="1.2.3.1", modality="MR", prefix="a")
    write_dicom_series(tmp_path, _volume(4), series_uid="1.2.3.2", prefix="b")
    assert load_ct(tmp_path).series_uid == "1.2.3.2"


def test_non_ct_modality_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, _volume(), modality="MR")
    with pytest.raises(ModalityError, match="MR"):
        load_ct(tmp_path)


def test_missing_slice_refused(tmp_path: Path) -> None:
    z = [-200.0, -198.0, -196.0, -192.0, -190.0]  # -194 is missing
    write_dicom_series(tmp_path, _volume(5), z_positions=z)
    with pytest.raises(SliceSpacingError, match="1 slice\\(s\\) missing") as info:
        load_ct(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_duplicated_slice_refused(tmp_path: Path) -> None:
    z = [-200.0, -198.0, -198.0, -196.0, -194.0]
    write_dicom_series(tmp_path, _volume(5), z_positions=z)
    with pytest.raises(SliceSpacingError, match="duplicated"):
        load_ct(tmp_path)


def test_non_uniform_spacing_warns(tmp_path: Path) -> None:
    z = [-200.0, -198.0, -196.1, -194.0, -192.0]
    write_dicom_series(tmp_path, _volume(5), z_positions=z)
    ct = load_ct(tmp_path)
    assert any("not uniform" in w for w in ct.warnings)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(NoDicomSeriesError, match="empty"):
        load_ct(tmp_path)


def test_folder_of_non_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "image.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(NoDicomSeriesError, match="none of the 2 files"):
        load_ct(tmp_path)


def test_writing_and_loading_keep_the_text_encoding(tmp_path: Path) -> None:
    import locale

    before = locale.getpreferredencoding(False)
    write_dicom_series(tmp_path, _volume())
    load_ct(tmp_path)
    assert locale.getpreferredencoding(False) == before
