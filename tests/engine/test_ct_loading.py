"""load_ct: every format round-trips; every kind of bad input gets a specific, named error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from engine.io.ct import load_ct
from engine.io.volume import CtVolume
from engine.errors import (
    CorruptFileError,
    EngineError,
    FileMissingError,
    NotAVolumeError,
    UnsupportedFormatError,
)

FLIPPED = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _write(path: Path, hu: np.ndarray, spacing=(0.7, 0.8, 1.25), origin=(-150.0, 120.0, -310.0), direction=FLIPPED, dtype=None):
    image = sitk.GetImageFromArray(hu if dtype is None else hu.astype(dtype))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return image


@pytest.mark.parametrize("name", ["1.2.3.4.mhd", "vol.mha", "vol.nii", "vol.nii.gz", "vol.nrrd"])
def test_round_trip_each_format(tmp_path: Path, name: str) -> None:
    hu = np.random.default_rng(0).integers(-1024, 2000, size=(7, 9, 11)).astype(np.int16)
    _write(tmp_path / name, hu)
    ct = load_ct(tmp_path / name)
    assert isinstance(ct, CtVolume)
    assert ct.hu.dtype == np.int16 and ct.hu.shape == (7, 9, 11)
    assert not ct.hu.flags.writeable
    assert_array_equal(ct.hu, hu)
    assert_allclose(ct.geometry.spacing_xyz, (0.7, 0.8, 1.25), atol=1e-6)
    assert_allclose(ct.geometry.origin_xyz, (-150.0, 120.0, -310.0), atol=1e-4)
    assert_allclose(ct.geometry.direction, FLIPPED, atol=1e-6)
    assert ct.modality == "CT"
    assert ct.source_path == tmp_path / name


def test_series_uid_is_file_stem_for_luna_files(tmp_path: Path) -> None:
    _write(tmp_path / "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225.mhd", np.zeros((3, 4, 5), np.int16) - 1000)
    assert load_ct(tmp_path / "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225.mhd").series_uid == (
        "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225"
    )
    _write(tmp_path / "chest.nii.gz", np.zeros((3, 4, 5), np.int16) - 1000)
    assert load_ct(tmp_path / "chest.nii.gz").series_uid == "chest"


def test_float_volume_is_rounded_to_int16(tmp_path: Path) -> None:
    hu = np.array([[[-1000.4, 10.6], [200.5, 3000.2]]] * 2, dtype=np.float32)
    _write(tmp_path / "f.nii", hu)
    ct = load_ct(tmp_path / "f.nii")
    assert ct.hu.dtype == np.int16
    assert_array_equal(ct.hu[0], [[-1000, 11], [200, 3000]])


def test_warns_when_no_air(tmp_path: Path) -> None:
    _write(tmp_path / "bright.mha", np.full((3, 4, 5), 24, np.int16))
    ct = load_ct(tmp_path / "bright.mha")
    assert any("air should read about -1000" in w for w in ct.warnings)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileMissingError, match="no such file"):
        load_ct(tmp_path / "nope.mhd")


def test_missing_raw(tmp_path: Path) -> None:
    _write(tmp_path / "a.mhd", np.zeros((3, 4, 5), np.int16))
    (tmp_path / "a.raw").unlink()
    with pytest.raises(FileMissingError) as info:
        load_ct(tmp_path / "a.mhd")
    assert "a.raw" in str(info.value) and "a.mhd" in str(info.value)


def test_truncated_raw(tmp_path: Path) -> None:
    _write(tmp_path / "a.mhd", np.zeros((3, 4, 5), np.int16))
    raw = tmp_path / "a.raw"
    raw.write_bytes(raw.read_bytes()[:50])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_ct(tmp_path / "a.mhd")


def test_header_with_wrong_dimensions(tmp_path: Path) -> None:
    _write(tmp_path / "a.mhd", np.zeros((3, 4, 5), np.int16))
    header = (tmp_path / "a.mhd").read_text().replace("DimSize = 5 4 3", "DimSize = 5 4")
    (tmp_path / "a.mhd").write_text(header)
    with pytest.raises(CorruptFileError, match="NDims = 3 but DimSize has 2"):
        load_ct(tmp_path / "a.mhd")


def test_header_promising_more_voxels_than_raw(tmp_path: Path) -> None:
    _write(tmp_path / "a.mhd", np.zeros((3, 4, 5), np.int16))
    header = (tmp_path / "a.mhd").read_text().replace("DimSize = 5 4 3", "DimSize = 512 512 3")
    (tmp_path / "a.mhd").write_text(header)
    with pytest.raises(CorruptFileError, match="truncated"):
        load_ct(tmp_path / "a.mhd")


def test_garbage_file_with_supported_extension(tmp_path: Path) -> None:
    (tmp_path / "junk.nii").write_bytes(b"this is not a nifti file" * 10)
    with pytest.raises(CorruptFileError) as info:
        load_ct(tmp_path / "junk.nii")
    assert "junk.nii" in str(info.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    with pytest.raises(UnsupportedFormatError, match="unsupported file type '.png'"):
        load_ct(tmp_path / "scan.png")


def test_2d_image_refused(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((8, 9), np.int16))
    sitk.WriteImage(image, str(tmp_path / "flat.mha"))
    with pytest.raises(NotAVolumeError, match="2D image"):
        load_ct(tmp_path / "flat.mha")


def test_single_slice_refused(tmp_path: Path) -> None:
    _write(tmp_path / "one.nrrd", np.zeros((1, 8, 9), np.int16) - 1000)
    with pytest.raises(NotAVolumeError, match="at least 2 voxels"):
        load_ct(tmp_path / "one.nrrd")


def test_vector_image_refused(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True)
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    with pytest.raises(NotAVolumeError, match="3 components"):
        load_ct(tmp_path / "rgb.mha")


def test_errors_share_one_hierarchy() -> None:
    for cls in (FileMissingError, CorruptFileError, NotAVolumeError, UnsupportedFormatError):
        assert issubclass(cls, EngineError)


def test_large_mhd_is_held_once_as_int16(tmp_path: Path) -> None:
    """512×512×300 is held once as int16, with no float copy (load time: ``main.py bench``)."""
    import tracemalloc

    hu = np.full((300, 512, 512), -1000, dtype=np.int16)
    hu[:, 100:400, 100:400] = 40
    _write(tmp_path / "big.mhd", hu)
    del hu
    tracemalloc.start()
    ct = load_ct(tmp_path / "big.mhd")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = 300 * 512 * 512 * 2
    assert ct.hu.dtype == np.int16 and ct.hu.nbytes == nbytes
    # numpy allocations seen by tracemalloc: the int16 array once, nothing of float size.
    assert peak < 1.5 * nbytes, f"peak traced allocation {peak / 1e6:.0f} MB for a {nbytes / 1e6:.0f} MB volume"
