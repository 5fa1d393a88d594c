"""Generated malformed inputs: CT files and folders, dataset CSVs, checkpoints.

Each :class:`BadInput` writes one hostile file (or folder) into a fresh folder
and says which of the project's errors it must give and which words the
message must hold. :func:`check` runs the loader on it and returns what
happened; the tests and ``python -m tests.reliability.figures`` both use it.
"""

from __future__ import annotations

import gzip
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import (
    CheckpointError,
    CheckpointKindError,
    CheckpointShapeError,
    CorruptFileError,
    CsvFormatError,
    CtLoadError,
    DatasetError,
    EngineError,
    FileMissingError,
    ModalityError,
    NoDicomSeriesError,
    NotAVolumeError,
    SliceSpacingError,
    UnsafeCheckpointError,
)

#: A marker file the hostile pickles would create if their code ran.
MARKER_NAME = "CODE_RAN"


@dataclass(frozen=True)
class BadInput:
    """One malformed input.

    Args:
        name: Short id (the test id).
        area: ``"ct"``, ``"csv"`` or ``"checkpoint"``.
        write: Writes the input into the given folder and returns its path.
        error: The project error it must raise.
        words: Text the message must contain (besides the file's name).
    """

    name: str
    area: str
    write: Callable[[Path], Path]
    error: type[EngineError]
    words: str


@dataclass(frozen=True)
class Outcome:
    """What loading a bad input did: handled (the right error, naming the file and the problem) or not."""

    case: BadInput
    handled: bool
    detail: str


# --- CT: MetaImage headers ------------------------------------------------------
_GOOD_HEADER = {
    "ObjectType": "Image",
    "NDims": "3",
    "DimSize": "8 8 4",
    "ElementSpacing": "1 1 2",
    "Offset": "0 0 0",
    "TransformMatrix": "1 0 0 0 1 0 0 0 1",
    "ElementType": "MET_SHORT",
    "ElementDataFile": "scan.raw",
}


def _mhd(changes: dict[str, str | None], raw_bytes: int | None = None, name: str = "scan.mhd") -> Callable[[Path], Path]:
    """A header = the good one with ``changes`` (None removes a key), plus a raw file of ``raw_bytes``."""

    def write(folder: Path) -> Path:
        fields = {k: v for k, v in _GOOD_HEADER.items() if k != "ElementDataFile"}
        data_file = changes.get("ElementDataFile", _GOOD_HEADER["ElementDataFile"])
        for key, value in changes.items():
            if value is None:
                fields.pop(key, None)
            elif key != "ElementDataFile":
                fields[key] = value
        fields["ElementDataFile"] = data_file  # the last field, as MetaImage requires
        path = folder / name
        path.write_text("".join(f"{k} = {v}\n" for k, v in fields.items()), encoding="latin-1")
        size = 8 * 8 * 4 * 2 if raw_bytes is None else raw_bytes
        (folder / "scan.raw").write_bytes(np.full(size // 2, -1000, dtype=np.int16).tobytes() + b"\0" * (size % 2))
        return path

    return write


def _real_mhd(hu: np.ndarray, spacing=(1.0, 1.0, 2.0), direction=None, name: str = "scan.mhd") -> Callable[[Path], Path]:
    """A volume written by SimpleITK itself (for images ITK accepts but a CT must not)."""

    def write(folder: Path) -> Path:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(hu, isVector=hu.ndim == 4 and hu.shape[-1] <= 4)
        image.SetSpacing(spacing[: image.GetDimension()])
        if direction is not None:
            image.SetDirection(direction)
        path = folder / name
        sitk.WriteImage(image, str(path))
        return path

    return write


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return write


def _truncated_copy(source: Callable[[Path], Path], keep: float, name: str) -> Callable[[Path], Path]:
    """A file written by ``source``, cut to ``keep`` of its length."""

    def write(folder: Path) -> Path:
        full = source(folder)
        data = full.read_bytes()
        path = folder / name
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return write


def _nifti(folder: Path) -> Path:
    import SimpleITK as sitk

    path = folder / "scan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((6, 8, 8), -1000, np.int16)), str(path))
    return path


def _gzip_garbage(folder: Path) -> Path:
    data = gzip.compress(b"\x5c\x01" + os.urandom(300))
    path = folder / "scan.nii.gz"
    path.write_bytes(data[: len(data) // 2] + b"garbage" * 10)
    return path


def _folder_named_like_file(folder: Path) -> Path:
    path = folder / "scan.mhd"
    path.mkdir()
    return path


def _dicom(kind: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        from tests.dicom_writer import write_dicom_series

        series = folder / "dicom"
        hu = np.full((6, 16, 16), -1000, np.int16)
        if kind == "mixed sizes":
            write_dicom_series(series, hu[:3])
            write_dicom_series(series, np.full((3, 20, 20), -1000, np.int16), origin_xyz=(-100.0, -120.0, -194.0), prefix="big")
        elif kind == "duplicated":
            write_dicom_series(series, hu, z_positions=[0.0, 2.0, 4.0, 4.0, 6.0, 8.0])
        elif kind == "missing":
            write_dicom_series(series, hu, z_positions=[0.0, 2.0, 4.0, 10.0, 12.0, 14.0])
        elif kind == "modality":
            write_dicom_series(series, hu, modality="MR")
        elif kind == "single":
            write_dicom_series(series, hu[:1])
        elif kind == "empty":
            series.mkdir()
        elif kind == "not dicom":
            series.mkdir()
            (series / "notes.txt").write_text("no images here")
        elif kind == "corrupt slice":
            files = write_dicom_series(series, hu)
            files[2].write_bytes(files[2].read_bytes()[:200])
        return series

    return write


def ct_cases() -> list[BadInput]:
    """Malformed CT files and folders and the error each must give."""
    huge = "100000 100000 100000"
    vector = np.zeros((4, 8, 8, 3), dtype=np.int16)
    cases = [
        BadInput("dimsize-count", "ct", _mhd({"DimSize": "8 8"}), CorruptFileError, "DimSize has 2 values"),
        BadInput("dimsize-negative", "ct", _mhd({"DimSize": "8 -8 4"}), CorruptFileError, "non-positive DimSize"),
        BadInput("dimsize-zero", "ct", _mhd({"DimSize": "8 0 4"}), CorruptFileError, "non-positive DimSize"),
        BadInput("dimsize-text", "ct", _mhd({"DimSize": "8 eight 4"}), CorruptFileError, "malformed NDims/DimSize"),
        BadInput("dimsize-huge", "ct", _mhd({"DimSize": huge}), CorruptFileError, "refused before reading"),
        BadInput("dimsize-huge-compressed", "ct", _mhd({"DimSize": huge, "CompressedData": "True"}), CorruptFileError,
                 "refused before reading"),
        BadInput("dimsize-huge-local", "ct", _mhd({"DimSize": huge, "ElementDataFile": "LOCAL"}), CorruptFileError,
                 "refused before reading"),
        BadInput("dimsize-larger-than-data", "ct", _mhd({"DimSize": "8 8 40"}), CorruptFileError, "truncated"),
        BadInput("no-dimsize", "ct", _mhd({"DimSize": None}), CorruptFileError, "no DimSize field"),
        BadInput("no-element-type", "ct", _mhd({"ElementType": None}), CorruptFileError, "no ElementType field"),
        BadInput("spacing-nan", "ct", _mhd({"ElementSpacing": "1 nan 2"}), CorruptFileError, "not finite"),
        BadInput("spacing-inf", "ct", _mhd({"ElementSpacing": "1 inf 2"}), CorruptFileError, "not finite"),
        BadInput("spacing-zero", "ct", _mhd({"ElementSpacing": "1 0 2"}), CorruptFileError, "non-positive ElementSpacing"),
        BadInput("spacing-negative", "ct", _mhd({"ElementSpacing": "1 1 -2"}), CorruptFileError, "non-positive ElementSpacing"),
        BadInput("spacing-count", "ct", _mhd({"ElementSpacing": "1 1"}), CorruptFileError, "ElementSpacing has 2 values"),
        BadInput("offset-nan", "ct", _mhd({"Offset": "0 nan 0"}), CorruptFileError, "Offset"),
        BadInput("direction-singular", "ct", _mhd({"TransformMatrix": "1 0 0 1 0 0 0 0 1"}), CorruptFileError, "direction matrix"),
        BadInput("direction-zero", "ct", _mhd({"TransformMatrix": "0 0 0 0 0 0 0 0 0"}), CorruptFileError, "direction matrix"),
        BadInput("direction-skewed", "ct", _mhd({"TransformMatrix": "1 0.5 0 0 1 0 0 0 1"}), CorruptFileError, "not orthogonal"),
        BadInput("direction-scaled", "ct", _mhd({"TransformMatrix": "2 0 0 0 2 0 0 0 2"}), CorruptFileError, "direction matrix"),
        BadInput("datafile-outside", "ct", _mhd({"ElementDataFile": "../../etc/passwd"}), CorruptFileError, "outside the header's folder"),
        BadInput("datafile-absolute", "ct", _mhd({"ElementDataFile": "/etc/passwd"}), CorruptFileError, "outside the header's folder"),
        BadInput("datafile-missing", "ct", _mhd({"ElementDataFile": "other.raw"}), FileMissingError, "is missing"),
        BadInput("element-type-unknown", "ct", _mhd({"ElementType": "MET_COMPLEX"}), CorruptFileError, "unsupported ElementType"),
        BadInput("element-channels", "ct", _mhd({"ElementNumberOfChannels": "3"}), NotAVolumeError, "one HU value per voxel"),
        BadInput("element-channels-text", "ct", _mhd({"ElementNumberOfChannels": "three"}), CorruptFileError, "not an integer"),
        BadInput("header-size-text", "ct", _mhd({"HeaderSize": "big"}), CorruptFileError, "not an integer"),
        BadInput("ndims-2", "ct", _mhd({"NDims": "2", "DimSize": "8 8", "ElementSpacing": "1 1", "Offset": "0 0",
                                        "TransformMatrix": "1 0 0 1"}), NotAVolumeError, "2D image"),
        BadInput("ndims-4", "ct", _mhd({"NDims": "4", "DimSize": "8 8 4 1", "ElementSpacing": "1 1 2 1",
                                        "Offset": "0 0 0 0", "TransformMatrix": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"}),
                 NotAVolumeError, "4D image"),
        BadInput("raw-truncated", "ct", _mhd({}, raw_bytes=100), CorruptFileError, "truncated"),
        BadInput("raw-zero-bytes", "ct", _mhd({}, raw_bytes=0), CorruptFileError, "truncated"),
        BadInput("mhd-zero-bytes", "ct", _bytes("scan.mhd", b""), CorruptFileError, "not a MetaImage header"),
        BadInput("mhd-binary", "ct", _bytes("scan.mhd", bytes(range(256)) * 4), CorruptFileError, "scan.mhd"),
        BadInput("vector-pixels", "ct", _real_mhd(vector, name="vector.mha"), NotAVolumeError, "components per voxel"),
        BadInput("image-2d", "ct", _real_mhd(np.zeros((8, 8), np.int16), name="flat.mha"), NotAVolumeError, "2D image"),
        BadInput("single-slice", "ct", _real_mhd(np.zeros((1, 8, 8), np.int16), name="one.mha"), NotAVolumeError, "at least 2 voxels"),
        BadInput("mha-direction-skewed", "ct", _real_mhd(np.zeros((4, 8, 8), np.int16), direction=(1, 0.4, 0, 0, 1, 0, 0, 0, 1),
                                                         name="skew.mha"), CorruptFileError, "not orthonormal"),
        BadInput("nifti-truncated", "ct", _truncated_copy(_nifti, 0.5, "cut.nii.gz"), CorruptFileError, "cannot be read"),
        BadInput("gzip-corrupt", "ct", _gzip_garbage, CorruptFileError, "cannot be read"),
        BadInput("nrrd-garbage", "ct", _bytes("scan.nrrd", b"NRRD0004\ntype: what\n\n" + os.urandom(64)), CorruptFileError,
                 "cannot be read"),
        BadInput("folder-named-mhd", "ct", _folder_named_like_file, NoDicomSeriesError, "empty"),
        BadInput("unknown-suffix", "ct", _bytes("scan.png", b"\x89PNG"), CtLoadError, "unsupported file type"),
        BadInput("dicom-mixed-sizes", "ct", _dicom("mixed sizes"), CtLoadError, "dicom"),
        BadInput("dicom-duplicated-slices", "ct", _dicom("duplicated"), SliceSpacingError, "duplicated slices"),
        BadInput("dicom-missing-slices", "ct", _dicom("missing"), SliceSpacingError, "missing"),
        BadInput("dicom-non-ct", "ct", _dicom("modality"), ModalityError, "MR"),
        BadInput("dicom-single-slice", "ct", _dicom("single"), NotAVolumeError, "single slice"),
        BadInput("dicom-empty-folder", "ct", _dicom("empty"), NoDicomSeriesError, "empty"),
        BadInput("dicom-no-images", "ct", _dicom("not dicom"), NoDicomSeriesError, "none of the"),
        BadInput("dicom-corrupt-slice", "ct", _dicom("corrupt slice"), CtLoadError, "dicom"),
    ]
    return cases


# --- dataset CSVs ---------------------------------------------------------------
_ANN_HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
_CAND_HEADER = "seriesuid,coordX,coordY,coordZ,class\n"


def csv_cases() -> list[BadInput]:
    """Malformed annotation and candidate CSVs."""

    def ann(body: str, header: str = _ANN_HEADER, name: str = "annotations.csv") -> Callable[[Path], Path]:
        return _bytes(name, (header + body).encode())

    def cand(body: str, header: str = _CAND_HEADER) -> Callable[[Path], Path]:
        return _bytes("candidates.csv", (header + body).encode())

    return [
        BadInput("ann-missing-column", "csv", ann("1.2,1,2,3\n", "seriesuid,coordX,coordY,coordZ\n"), CsvFormatError, "diameter_mm"),
        BadInput("ann-empty-file", "csv", ann("", ""), CsvFormatError, "missing column"),
        BadInput("ann-text-number", "csv", ann("1.2,1,two,3,5\n"), CsvFormatError, "not a number"),
        BadInput("ann-empty-number", "csv", ann("1.2,1,,3,5\n"), CsvFormatError, "not a number"),
        BadInput("ann-nan", "csv", ann("1.2,nan,2,3,5\n"), CsvFormatError, "not a finite number"),
        BadInput("ann-inf", "csv", ann("1.2,1,2,inf,5\n"), CsvFormatError, "not a finite number"),
        BadInput("ann-negative-diameter", "csv", ann("1.2,1,2,3,-4\n"), CsvFormatError, "must be positive"),
        BadInput("ann-zero-diameter", "csv", ann("1.2,1,2,3,0\n"), CsvFormatError, "must be positive"),
        BadInput("ann-uid-slash", "csv", ann("../../etc/x,1,2,3,5\n"), CsvFormatError, "cannot be a series uid"),
        BadInput("ann-uid-backslash", "csv", ann("a\\b,1,2,3,5\n"), CsvFormatError, "cannot be a series uid"),
        BadInput("ann-uid-empty", "csv", ann(",1,2,3,5\n"), CsvFormatError, "cannot be a series uid"),
        BadInput("ann-short-row", "csv", ann("1.2,1,2\n"), CsvFormatError, "not a number"),
        BadInput("ann-bad-mal-bool", "csv", ann("1.2,1,2,3,5,maybe\n", _ANN_HEADER.strip() + ",mal_bool\n"), CsvFormatError, "True/False"),
        BadInput("ann-bad-mal-details", "csv", ann("1.2,1,2,3,5,True,\"[1, x]\"\n", _ANN_HEADER.strip() + ",mal_bool,mal_details\n"),
                 CsvFormatError, "list of ratings"),
        BadInput("ann-not-utf8", "csv", _bytes("annotations.csv", _ANN_HEADER.encode() + b"\xff\xfe,1,2,3,5\n"), DatasetError, "utf-8"),
        BadInput("cand-bad-class", "csv", cand("1.2,1,2,3,7\n"), CsvFormatError, "expected 0 or 1"),
        BadInput("cand-nan", "csv", cand("1.2,1,nan,3,0\n"), CsvFormatError, "not a finite number"),
        BadInput("cand-uid-slash", "csv", cand("a/b,1,2,3,0\n"), CsvFormatError, "cannot be a series uid"),
        BadInput("cand-missing-column", "csv", cand("1.2,1,2,3\n", "seriesuid,coordX,coordY,coordZ\n"), CsvFormatError, "class"),
    ]


# --- checkpoints ------------------------------------------------------------------
def _checkpoint(kind: str = "classifier", **changes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        import torch

        from engine.checkpoints import save_checkpoint
        from engine.models import NoduleClassifier

        path = folder / "model.pt"
        save_checkpoint(path, NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})
        if changes or kind != "classifier":
            payload = torch.load(path, weights_only=True)
            payload["kind"] = kind
            for key, value in changes.items():
                if callable(value):
                    payload[key] = value(payload[key])
                else:
                    payload[key] = value
            torch.save(payload, path)
        return path

    return write


def _truncated_checkpoint(keep: float) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = _checkpoint()(folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return write


class _RunsCode:
    """Unpickling it would create the marker file (proof that code ran)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _evil(protocol: int | None) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        import pickle

        import torch

        path = folder / "evil.pt"
        payload = {"format": "lungcad-checkpoint", "model_state": {}, "x": _RunsCode(str(folder / MARKER_NAME))}
        if protocol is None:
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload, protocol=protocol))
        return path

    return write


def _wrong_shapes(state: dict) -> dict:
    import torch

    state = dict(state)
    state["head_linear.weight"] = torch.zeros(2, 7)
    return state


def checkpoint_cases() -> list[BadInput]:
    """Damaged, mislabelled and hostile checkpoints."""
    return [
        BadInput("ckpt-empty", "checkpoint", _bytes("model.pt", b""), CheckpointError, "empty"),
        BadInput("ckpt-truncated-half", "checkpoint", _truncated_checkpoint(0.5), CheckpointError, "truncated"),
        BadInput("ckpt-truncated-tail", "checkpoint", _truncated_checkpoint(0.98), CheckpointError, "truncated"),
        BadInput("ckpt-garbage", "checkpoint", _bytes("model.pt", b"\x00GARBAGE" * 512), CheckpointError, "not a checkpoint"),
        BadInput("ckpt-text", "checkpoint", _bytes("model.pt", b"hello"), CheckpointError, "not a checkpoint"),
        BadInput("ckpt-unknown-kind", "checkpoint", _checkpoint("detector"), CheckpointKindError, "unknown model kind"),
        BadInput("ckpt-wrong-shapes", "checkpoint", _checkpoint(model_state=_wrong_shapes), CheckpointShapeError, "wrong shape"),
        BadInput("ckpt-sha-mismatch", "checkpoint", _checkpoint(sha256="0" * 64), CheckpointError, "sha256"),
        BadInput("ckpt-huge-channels", "checkpoint", _checkpoint(model_args={"conv_channels": 10**6}), CheckpointError, "outside"),
        BadInput("ckpt-huge-unet", "checkpoint", _checkpoint("segmentation", model_args={"wf": 12, "depth": 8}), CheckpointError,
                 "parameters"),
        BadInput("ckpt-arg-type", "checkpoint", _checkpoint(model_args={"conv_channels": "8"}), CheckpointError, "not a int"),
        BadInput("ckpt-arg-unknown", "checkpoint", _checkpoint(model_args={"conv_channels": 2, "extra": 1}), CheckpointError,
                 "unknown argument"),
        BadInput("ckpt-version", "checkpoint", _checkpoint(format_version=99), CheckpointError, "version 99"),
        BadInput("ckpt-not-dict", "checkpoint", _checkpoint(model_state=[1, 2]), CheckpointError, "model_state"),
        BadInput("ckpt-pickle-code", "checkpoint", _evil(None), UnsafeCheckpointError, "refused: loading it could run code"),
        BadInput("ckpt-raw-pickle-code", "checkpoint", _evil(2), UnsafeCheckpointError, "refused: loading it could run code"),
        BadInput("ckpt-folder", "checkpoint", lambda folder: (folder / "model.pt").mkdir() or folder / "model.pt",
                 CheckpointError, "is a folder"),
    ]


def all_cases() -> list[BadInput]:
    """Every generated bad input."""
    return ct_cases() + csv_cases() + checkpoint_cases()


def load(case: BadInput, path: Path) -> object:
    """Run the loader of the case's area on ``path``."""
    if case.area == "ct":
        from engine.io.ct import load_ct

        return load_ct(path)
    if case.area == "csv":
        from engine.luna import iter_candidates, read_annotations

        if path.name == "candidates.csv":
            return list(iter_candidates(path))
        return read_annotations(path)
    from engine.checkpoints import load_checkpoint

    return load_checkpoint(path)


def check(case: BadInput, folder: Path) -> Outcome:
    """Write the case into ``folder`` (empty) and load it.

    Returns:
        Handled when the case's error was raised, its message names the file
        and holds the case's words, and no hostile code ran.
    """
    path = case.write(folder)
    try:
        load(case, path)
    except case.error as exc:
        text = str(exc)
        if path.name not in text:
            return Outcome(case, False, f"message does not name {path.name}: {text}")
        if case.words.lower() not in text.lower():
            return Outcome(case, False, f"message lacks {case.words!r}: {text}")
        if (folder / MARKER_NAME).exists():
            return Outcome(case, False, "refused, but the hostile code ran")
        return Outcome(case, True, text)
    except Exception as exc:  # noqa: BLE001 — any other error is the finding
        return Outcome(case, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
    return Outcome(case, False, "loaded without an error")
