"""One exception hierarchy for everything the engine refuses.

Every error names the file (when there is one) and says what is wrong in words
a user can act on. The GUI shows ``str(error)`` in a dialog; the CLI prints it
and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base class of every error the engine raises on purpose.

    Args:
        message: What is wrong, in plain words.
        path: The file or folder concerned, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        text = message if path is None else f"{path}: {message}"
        super().__init__(text)


# --- loading CT volumes -------------------------------------------------------
class CtLoadError(EngineError):
    """A CT series could not be read."""


class FileMissingError(CtLoadError):
    """The file or folder does not exist."""


class UnsupportedFormatError(CtLoadError):
    """The file extension is not a supported volume format."""


class CorruptFileError(CtLoadError):
    """The file exists but its contents are unreadable, truncated or inconsistent."""


class NotAVolumeError(CtLoadError):
    """The image is not a 3D scalar volume (e.g. a 2D image or RGB data)."""


class NoDicomSeriesError(CtLoadError):
    """A folder holds no DICOM series."""


class SeriesChoiceError(CtLoadError):
    """A DICOM folder holds several series and the requested one is not among them."""


class SliceSpacingError(CtLoadError):
    """DICOM slices are missing or duplicated, so the volume would be wrong."""


class ModalityError(CtLoadError):
    """The series is not a CT (e.g. MR or PT)."""


# --- dataset index -----------------------------------------------------------
class DatasetError(EngineError):
    """A LUNA16-format dataset folder or one of its CSV files is unusable."""


class CsvFormatError(DatasetError):
    """A CSV file lacks a column or holds a value that does not parse."""


# --- models and checkpoints --------------------------------------------------
class CheckpointError(EngineError):
    """A checkpoint file cannot be used."""


class UnsafeCheckpointError(CheckpointError):
    """Loading the file would require unpickling arbitrary code; it is refused."""


class CheckpointKindError(CheckpointError):
    """The checkpoint holds a different kind of model than the caller needs."""


class CheckpointShapeError(CheckpointError):
    """The checkpoint's tensors do not fit the model's parameters."""


# --- running ------------------------------------------------------------------
class CancelledError(EngineError):
    """A long operation stopped because the caller asked it to."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


class DeviceError(EngineError):
    """The requested compute device is not available."""


class TrainingRunError(EngineError):
    """A training run cannot start or resume (its folder exists already, nothing to resume, ...)."""


# --- writing outputs ----------------------------------------------------------
class OutputPathError(EngineError):
    """An output would replace an input, a folder or a special file (device, FIFO, socket); nothing is written."""


class OutputWriteError(EngineError):
    """An output could not be written (full or read-only disk, ...); the result computed before is kept."""


# --- application resources ----------------------------------------------------
class ResourceFileError(EngineError):
    """A file shipped in resources/ (window/level presets, ...) is missing or malformed."""
