"""The output files of a command: checked before the work, written after it without losing the result.

A command checks every output path first (:func:`check_outputs`, the rule of
:func:`engine.files.check_output_paths`), so that an output that would replace
an input, a folder or a device is refused before minutes of detection. A
write that still fails afterwards (full or read-only disk) is reported by
:func:`write_outputs` while the result, already printed, is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TextIO

from engine.errors import EngineError
from engine.files import check_output_paths

#: What a command writes: option → (path or None, writer taking the path and returning the file written).
Writers = Mapping[str, tuple[str | Path | None, Callable[[str | Path], Path]]]


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Iterable[str | Path]) -> None:
    """Refuse outputs that are inputs, folders, special files, or named twice.

    Args:
        outputs: Option → output file (``None`` when not asked for).
        inputs: The files and folders the command reads.

    Raises:
        OutputPathError: an output is refused (nothing has been written).
    """
    check_output_paths(outputs, inputs)


def write_outputs(writers: Writers, out: TextIO | None = None, err: TextIO | None = None) -> list[str]:
    """Write each requested output; a failure is reported and the others are still written.

    Args:
        writers: Option → (path, writer); entries whose path is ``None`` are skipped.
        out: Where ``wrote PATH`` lines go (default stdout).
        err: Where ``error:`` lines go (default stderr).

    Returns:
        The options whose file could not be written (empty when all were).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    failed = []
    for option, (path, write) in writers.items():
        if path is None:
            continue
        try:
            written = write(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"error: {option} {path}: could not be written ({reason}); the results above are kept", file=err)
            failed.append(option)
        except EngineError as exc:
            print(f"error: {option} {exc}; the results above are kept", file=err)
            failed.append(option)
        else:
            print(f"wrote {written}", file=out)
    return failed
