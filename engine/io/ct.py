"""Loading a CT volume (:class:`~engine.io.volume.CtVolume`) from disk through SimpleITK.

Files are
read with SimpleITK: MetaImage (``.mhd``/``.raw``, ``.mha``), NIfTI (``.nii``,
``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) and DICOM series folders.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import FileMissingError, UnsupportedFormatError
from engine.io.volume import CtVolume, read_sitk_image, volume_from_sitk

#: File name endings that ``load_ct`` reads as a single volume file.
VOLUME_SUFFIXES = (".mhd", ".mha", ".nii", ".nii.gz", ".nrrd", ".nhdr")
#: Endings of single DICOM files; their whole series is loaded from the folder.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

def volume_suffix(path: Path) -> str:
    """The supported ending of ``path`` (lower case, ``.nii.gz`` kept whole), or ``""``."""
    name = path.name.lower()
    for suffix in sorted(VOLUME_SUFFIXES + DICOM_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return ""


def series_uid_from_filename(path: Path) -> str:
    """The file name without its volume ending (LUNA16 names files ``<uid>.mhd``)."""
    suffix = volume_suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.stem


def input_files(path: str | Path) -> tuple[Path, ...]:
    """The files and folders that :func:`load_ct` reads for ``path``: outputs must not replace them.

    A ``.mhd`` header brings its data file (``ElementDataFile``) along; a
    DICOM file brings its folder. Unreadable headers give just ``path``.
    """
    path = Path(path)
    found = [path]
    suffix = volume_suffix(path)
    if suffix in DICOM_SUFFIXES:
        found.append(path.parent)
    elif suffix in (".mhd", ".nhdr") and path.is_file():
        from engine.io.metaimage import data_file_names

        found.extend(path.parent / name for name in data_file_names(path))
    return tuple(found)


def load_ct(path: str | Path, series_uid: str | None = None) -> CtVolume:
    """Load a CT volume from a file or a DICOM folder.

    Args:
        path: A ``.mhd``/``.mha``/``.nii``/``.nii.gz``/``.nrrd``/``.nhdr`` file, a
            DICOM folder, or one DICOM file (its whole series is loaded).
        series_uid: For a DICOM folder with several series, which one to load;
            ``None`` takes the CT series with the most slices and says so in
            ``CtVolume.notes``.

    Returns:
        The volume, with ``int16`` HU in (index, row, col) order.

    Raises:
        FileMissingError: ``path`` does not exist (or a MetaImage data file is missing).
        UnsupportedFormatError: the file ending is not a supported format.
        CorruptFileError: the file is truncated or its header is inconsistent.
        NotAVolumeError: the image is 2D, a single slice, or not scalar.
        NoDicomSeriesError, SeriesChoiceError, SliceSpacingError, ModalityError:
            DICOM folder problems (see :mod:`engine.io.dicom`).
    """
    path = Path(path)
    if not path.exists():
        raise FileMissingError("no such file or folder", path)
    if path.is_dir():
        from engine.io.dicom import load_dicom_series

        return load_dicom_series(path, series_uid)
    suffix = volume_suffix(path)
    if suffix in DICOM_SUFFIXES:
        from engine.io.dicom import load_dicom_file_series

        return load_dicom_file_series(path)
    if not suffix:
        supported = ", ".join(VOLUME_SUFFIXES)
        raise UnsupportedFormatError(
            f"unsupported file type {path.suffix or '(no extension)'!r}; "
            f"open one of {supported} or a DICOM folder",
            path,
        )
    if suffix == ".mhd":
        from engine.io.metaimage import check_mhd_header

        check_mhd_header(path)
    image = read_sitk_image(path)
    return volume_from_sitk(image, path, series_uid_from_filename(path))


