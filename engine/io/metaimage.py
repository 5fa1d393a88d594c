"""Checks of MetaImage (``.mhd``) headers before SimpleITK reads them.

ITK's own messages for a missing or short ``.raw`` file are cryptic; these
checks name the data file and say exactly what is wrong.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import CorruptFileError, FileMissingError

_ELEMENT_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2,
    "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4,
    "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}


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


def check_mhd_header(path: Path) -> None:
    """Check that a ``.mhd`` header is consistent and its data file is complete.

    Raises:
        CorruptFileError: a required field is missing, ``DimSize`` does not match
            ``NDims``, or the data file is shorter than the header promises.
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
    data_name = fields["ElementDataFile"]
    if data_name.upper() == "LOCAL" or data_name.upper().startswith("LIST") or "%" in data_name:
        return  # data inside the header file, or a file list: leave it to ITK
    data_path = path.parent / data_name
    if not data_path.exists():
        raise FileMissingError(f"the data file {data_name!r} named by the header is missing", path)
    if fields.get("CompressedData", "False").strip().lower() == "true":
        return
    element = _ELEMENT_BYTES.get(fields["ElementType"].strip().upper())
    if element is None:
        raise CorruptFileError(f"header has an unknown ElementType {fields['ElementType']!r}", path)
    channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
    expected = element * channels
    for d in dims:
        expected *= d
    expected += int(fields.get("HeaderSize", "0") or 0) if fields.get("HeaderSize", "0") != "-1" else 0
    actual = data_path.stat().st_size
    if actual < expected:
        raise CorruptFileError(
            f"data file {data_name!r} is truncated: {actual} bytes, the header's DimSize {dims} "
            f"× {fields['ElementType']} needs {expected}",
            path,
        )
