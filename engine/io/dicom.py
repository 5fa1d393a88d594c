"""DICOM series folders: listing the series, checking slices, loading one.

Series are found with GDCM through SimpleITK (``GetGDCMSeriesIDs`` /
``GetGDCMSeriesFileNames``), never by sorting file names. Slice positions are
checked along the slice normal: duplicated or missing slices are refused,
merely non-uniform spacing gives a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.io.volume import HEADER_KEYS, CtVolume, itk_error_text, volume_from_sitk
from engine.errors import (
    CorruptFileError,
    ModalityError,
    NoDicomSeriesError,
    NotAVolumeError,
    SeriesChoiceError,
    SliceSpacingError,
)

_TAG_MODALITY = "0008|0060"
_TAG_DESCRIPTION = "0008|103e"
_TAG_THICKNESS = "0018|0050"
_TAG_POSITION = "0020|0032"
_TAG_ORIENTATION = "0020|0037"
_TAG_SERIES_UID = "0020|000e"


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One series found in a folder, enough for a user to choose.

    Args:
        uid: Series instance UID.
        modality: DICOM modality (``CT``, ``MR``, ...), ``""`` when absent.
        description: Series description, ``""`` when absent.
        slice_count: Number of files (slices) in the series.
        slice_thickness_mm: Slice thickness from the header, if present.
        files: The slice files in GDCM's order.
    """

    uid: str
    modality: str
    description: str
    slice_count: int
    slice_thickness_mm: float | None
    files: tuple[str, ...]


def _file_reader(path: str):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return reader


def _tag(reader, tag: str) -> str:
    return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""


def list_dicom_series(folder: str | Path) -> list[DicomSeriesInfo]:
    """List the DICOM series in a folder (not its sub-folders).

    Args:
        folder: The folder to scan.

    Returns:
        One :class:`DicomSeriesInfo` per series, most slices first.

    Raises:
        NoDicomSeriesError: the folder holds no readable DICOM series (empty, or
            only non-DICOM files).
    """
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise NoDicomSeriesError("is not a folder", folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not uids:
        files = [p for p in folder.iterdir() if p.is_file()]
        if not files:
            raise NoDicomSeriesError("the folder is empty: no DICOM series to open", folder)
        raise NoDicomSeriesError(
            f"none of the {len(files)} files in the folder is a DICOM image "
            "(to open a .mhd, NIfTI or NRRD file use File > Open)",
            folder,
        )
    found = []
    for uid in uids:
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        if not files:
            continue
        try:
            reader = _file_reader(files[0])
        except RuntimeError as exc:
            raise CorruptFileError(f"cannot read DICOM header ({itk_error_text(exc)})", files[0]) from None
        thickness = _tag(reader, _TAG_THICKNESS)
        try:
            thickness_mm = float(thickness) if thickness else None
        except ValueError:
            thickness_mm = None
        found.append(
            DicomSeriesInfo(
                uid=uid,
                modality=_tag(reader, _TAG_MODALITY).upper(),
                description=_tag(reader, _TAG_DESCRIPTION),
                slice_count=len(files),
                slice_thickness_mm=thickness_mm,
                files=files,
            )
        )
    found.sort(key=lambda s: -s.slice_count)
    return found


def choose_series(series: list[DicomSeriesInfo], uid: str | None, folder: Path) -> tuple[DicomSeriesInfo, tuple[str, ...]]:
    """Pick the requested series, or the CT series with the most slices.

    Returns:
        The chosen series and notes saying how it was chosen (empty when the
        folder held only that series or the caller named it).

    Raises:
        SeriesChoiceError: ``uid`` is not among the series.
        ModalityError: no series is a CT.
    """
    if uid is not None:
        for s in series:
            if s.uid == uid:
                return s, ()
        listed = ", ".join(s.uid for s in series)
        raise SeriesChoiceError(f"has no series {uid!r}; it holds: {listed}", folder)
    cts = [s for s in series if s.modality in ("CT", "")]
    if not cts:
        s = series[0]
        raise ModalityError(
            f"holds no CT series: series {s.uid} is {s.modality or 'of unknown modality'}; "
            "this application analyses CT only",
            folder,
        )
    chosen = max(cts, key=lambda s: s.slice_count)
    notes: tuple[str, ...] = ()
    if len(series) > 1:
        notes = (
            f"the folder holds {len(series)} series; loaded the CT series with the most slices, "
            f"{chosen.uid} ({chosen.slice_count} slices){' ' + repr(chosen.description) if chosen.description else ''}",
        )
    return chosen, notes


def check_slice_positions(files: tuple[str, ...], folder: Path) -> tuple[str, ...]:
    """Check that slices are evenly spaced along their normal.

    Returns:
        Warnings (non-uniform spacing, positions absent); empty when all is well.

    Raises:
        SliceSpacingError: two slices share a position, or a gap is at least 1.5
            times the typical spacing (a missing slice).
    """
    positions = []
    normal = None
    for name in files:
        reader = _file_reader(name)
        pos = _tag(reader, _TAG_POSITION)
        if not pos:
            return ("slice positions (ImagePositionPatient) are absent; spacing could not be checked",)
        if normal is None:
            orient = _tag(reader, _TAG_ORIENTATION)
            if orient:
                v = np.array([float(x) for x in orient.split("\\")], dtype=np.float64)
                normal = np.cross(v[:3], v[3:])
            else:
                normal = np.array([0.0, 0.0, 1.0])
        positions.append([float(x) for x in pos.split("\\")])
    depth = np.asarray(positions) @ normal
    gaps = np.abs(np.diff(depth))
    typical = float(np.median(gaps))
    if typical <= 1e-6 or np.any(gaps < 1e-3 * max(typical, 1e-3)):
        k = int(np.argmin(gaps))
        raise SliceSpacingError(
            f"two slices share the position {depth[k]:.3f} mm along the slice normal "
            f"({Path(files[k]).name}, {Path(files[k + 1]).name}): duplicated slices",
            folder,
        )
    if np.any(gaps > 1.5 * typical):
        k = int(np.argmax(gaps))
        missing = int(round(gaps[k] / typical)) - 1
        raise SliceSpacingError(
            f"gap of {gaps[k]:.2f} mm between slices at {depth[k]:.2f} and {depth[k + 1]:.2f} mm "
            f"where the spacing is {typical:.2f} mm: about {missing} slice(s) missing",
            folder,
        )
    spread = float(gaps.max() - gaps.min())
    if spread > 0.01 * typical:
        return (
            f"slice spacing is not uniform: {gaps.min():.3f} to {gaps.max():.3f} mm "
            f"(typical {typical:.3f} mm); distances along z may be slightly off",
        )
    return ()


def load_dicom_series(folder: str | Path, series_uid: str | None = None) -> CtVolume:
    """Load one CT series from a DICOM folder.

    Args:
        folder: The folder holding the series' files.
        series_uid: Which series; ``None`` takes the CT series with most slices.

    Returns:
        The volume; ``notes`` says which series was taken when there were several,
        ``warnings`` lists non-fatal problems.

    Raises:
        NoDicomSeriesError, SeriesChoiceError, ModalityError, SliceSpacingError,
        NotAVolumeError, CorruptFileError.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    series = list_dicom_series(folder)
    chosen, notes = choose_series(series, series_uid, folder)
    if chosen.modality not in ("CT", ""):
        raise ModalityError(
            f"series {chosen.uid} is {chosen.modality}, not CT; this application analyses CT only", folder
        )
    if chosen.slice_count < 2:
        raise NotAVolumeError(f"series {chosen.uid} has a single slice; a CT volume needs several", folder)
    warnings = check_slice_positions(chosen.files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen.files))
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise CorruptFileError(f"series {chosen.uid} cannot be read ({itk_error_text(exc)})", folder) from None
    header = {}

    for key, name in HEADER_KEYS.items():
        if reader.HasMetaDataKey(0, key):
            value = reader.GetMetaData(0, key).strip()
            if value:
                header[name] = value
    if chosen.description:
        header["SeriesDescription"] = chosen.description
    return volume_from_sitk(
        image,
        folder,
        chosen.uid,
        modality=chosen.modality or "CT",
        header=header,
        warnings=warnings,
        notes=notes,
    )


def load_dicom_file_series(path: Path) -> CtVolume:
    """Load the whole series that one DICOM file belongs to, from its folder."""
    try:
        reader = _file_reader(str(path))
    except RuntimeError as exc:
        raise CorruptFileError(f"is not a readable DICOM file ({itk_error_text(exc)})", path) from None
    uid = _tag(reader, _TAG_SERIES_UID)
    return load_dicom_series(path.parent, uid or None)
