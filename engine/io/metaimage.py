"""Checks of MetaImage (``.mhd``) headers before SimpleITK reads them.

ITK's own messages for a missing or short ``.raw`` file are cryptic, and ITK
allocates whatever ``DimSize`` claims before it reads a byte; these checks
name the file and say exactly what is wrong, before anything is allocated.
"""

from __future__ import annotations

import math
from pathlib import Path

from engine.errors import CorruptFileError, FileMissingError, NotAVolumeError

_ELEMENT_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2,
    "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4,
    "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}
#: The most voxels a header may claim (2**30: an int16 volume of 2 GiB, four times a 512×512×1000 CT).
MAX_VOXELS = 2**30
#: How far a direction matrix may be from orthonormal (rounding in written headers).
_ORTHO_TOLERANCE = 1e-3
#: Header keys that may spell the direction matrix.
_DIRECTION_KEYS = ("TransformMatrix", "Rotation", "Orientation")
#: Header keys that may spell the origin.
_ORIGIN_KEYS = ("Offset", "Position", "Origin")


def read_mhd_header(path: Path) -> dict[str, str]:
    """The ``key = value`` fields of a MetaImage header, keys as written.

    Raises:
        CorruptFileError: the file is not text or has no ``key = value`` lines.
    """
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise CorruptFileError(f"cannot be read ({exc.strerror})", path) from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break  # binary data may follow in a single-file header
    if not fields:
        raise CorruptFileError("is not a MetaImage header (no 'key = value' lines)", path)
    return fields


def data_file_names(path: Path) -> tuple[str, ...]:
    """The data file a ``.mhd``/``.nhdr`` header names (relative to its folder), or none (``LOCAL``, a list, unreadable)."""
    if path.suffix.lower() == ".nhdr":
        return _nrrd_data_file(path)
    try:
        name = read_mhd_header(path).get("ElementDataFile", "")
    except CorruptFileError:
        return ()
    if not name or _is_special_data_name(name):
        return ()
    return (name,)


def _nrrd_data_file(path: Path) -> tuple[str, ...]:
    """The ``data file:`` of a detached NRRD header, when it names one file."""
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError:
        return ()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("data file", "datafile"):
            value = value.strip()
            return () if not value or " " in value or value.upper().startswith("LIST") else (value,)
    return ()


def _is_special_data_name(name: str) -> bool:
    return name.upper() == "LOCAL" or name.upper().startswith("LIST") or "%" in name


def _numbers(fields: dict[str, str], key: str, path: Path, count: int | None = None) -> list[float]:
    """A header field of floats; checks they parse, are finite, and (when given) how many there are."""
    text = fields[key]
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise CorruptFileError(f"header field {key} = {text!r} is not a list of numbers", path) from None
    if count is not None and len(values) != count:
        raise CorruptFileError(f"header field {key} has {len(values)} values, expected {count}", path)
    if not all(math.isfinite(v) for v in values):
        raise CorruptFileError(f"header field {key} = {text!r} holds a value that is not finite", path)
    return values


def _integer(fields: dict[str, str], key: str, default: int, path: Path) -> int:
    text = fields.get(key, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise CorruptFileError(f"header field {key} = {text!r} is not an integer", path) from None


def check_geometry_fields(fields: dict[str, str], ndims: int, path: Path) -> None:
    """Check ``ElementSpacing``, the origin and the direction matrix of a header.

    Raises:
        CorruptFileError: spacing not positive and finite, origin not finite, or a
            direction matrix that is not orthonormal (singular, skewed or scaled).
    """
    if "ElementSpacing" in fields:
        spacing = _numbers(fields, "ElementSpacing", path, ndims)
        if any(v <= 0 for v in spacing):
            raise CorruptFileError(f"header has a non-positive ElementSpacing {spacing}; voxel sizes must be > 0 mm", path)
    for key in _ORIGIN_KEYS:
        if key in fields:
            _numbers(fields, key, path, ndims)
    for key in _DIRECTION_KEYS:
        if key in fields:
            values = _numbers(fields, key, path, ndims * ndims)
            _check_orthonormal(values, ndims, key, path)


def _check_orthonormal(values: list[float], n: int, key: str, path: Path) -> None:
    rows = [values[i * n : (i + 1) * n] for i in range(n)]
    for i in range(n):
        for j in range(n):
            dot = sum(rows[k][i] * rows[k][j] for k in range(n))  # columns i and j
            if abs(dot - (1.0 if i == j else 0.0)) > _ORTHO_TOLERANCE:
                problem = "singular or scaled" if i == j else "not orthogonal"
                raise CorruptFileError(
                    f"header's {key} {values} is {problem}: a direction matrix needs orthonormal axes", path
                )


def check_mhd_header(path: Path) -> None:
    """Check that a ``.mhd`` header is consistent, safe to read, and its data file complete.

    Raises:
        CorruptFileError: a required field is missing or malformed, ``DimSize``
            does not match ``NDims`` or claims more than :data:`MAX_VOXELS`, the
            spacing or direction is unusable, the ``ElementType`` is unknown, the
            data file lies outside the header's folder, or it is shorter than the
            header promises.
        NotAVolumeError: the header describes a 2D/4D image or vector voxels.
        FileMissingError: the data file named by ``ElementDataFile`` is missing.
    """
    fields = read_mhd_header(path)
    for key in ("NDims", "DimSize", "ElementType", "ElementDataFile"):
        if key not in fields:
            raise CorruptFileError(f"header has no {key} field", path)
    try:
        ndims = int(fields["NDims"])
        dims = [int(v) for v in fields["DimSize"].split()]
    except ValueError:
        raise CorruptFileError(
            f"header has a malformed NDims/DimSize ({fields['NDims']!r} / {fields['DimSize']!r})", path
        ) from None
    if len(dims) != ndims:
        raise CorruptFileError(f"header says NDims = {ndims} but DimSize has {len(dims)} values {dims}", path)
    if any(d <= 0 for d in dims):
        raise CorruptFileError(f"header has a non-positive DimSize {dims}", path)
    if ndims != 3:
        raise NotAVolumeError(f"header describes a {ndims}D image (NDims = {ndims}); a CT volume needs 3 dimensions", path)
    voxels = math.prod(dims)
    if voxels > MAX_VOXELS:
        raise CorruptFileError(
            f"header's DimSize {dims} claims {voxels:,} voxels, more than the {MAX_VOXELS:,} a CT can have; "
            "refused before reading",
            path,
        )
    channels = _integer(fields, "ElementNumberOfChannels", 1, path)
    if channels != 1:
        raise NotAVolumeError(
            f"header has ElementNumberOfChannels = {channels}; a CT volume holds one HU value per voxel", path
        )
    element = _ELEMENT_BYTES.get(fields["ElementType"].strip().upper())
    if element is None:
        raise CorruptFileError(
            f"header has an unsupported ElementType {fields['ElementType']!r}; expected one of {', '.join(_ELEMENT_BYTES)}",
            path,
        )
    check_geometry_fields(fields, ndims, path)
    header_size = _integer(fields, "HeaderSize", 0, path)
    data_name = fields["ElementDataFile"]
    if _is_special_data_name(data_name):
        return  # data inside the header file, or a file list: leave it to ITK
    data_path = path.parent / data_name
    if Path(data_name).is_absolute() or ".." in Path(data_name).parts:
        raise CorruptFileError(
            f"header's ElementDataFile {data_name!r} lies outside the header's folder; refused", path
        )
    if not data_path.exists():
        raise FileMissingError(f"the data file {data_name!r} named by the header is missing", path)
    if not data_path.is_file():
        raise CorruptFileError(f"the data file {data_name!r} named by the header is not a file", path)
    if fields.get("CompressedData", "False").strip().lower() == "true":
        return
    expected = element * voxels + (header_size if header_size > 0 else 0)
    actual = data_path.stat().st_size
    if actual < expected:
        raise CorruptFileError(
            f"data file {data_name!r} is truncated: {actual} bytes, the header's DimSize {dims} "
            f"× {fields['ElementType']} needs {expected}",
            path,
        )
