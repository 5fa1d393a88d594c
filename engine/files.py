"""Atomic file writing: a reader sees the old file or the new one, never half of one.

Every writer of a file that matters (checkpoints, exports, caches, reports,
datasets) goes through here: the content goes to a temporary file in the
destination's folder, is flushed and ``fsync``-ed, then ``os.replace``
puts it in place in one step. Any error removes the temporary file and leaves
the old file as it was. The new file gets the permissions a plain
``open(path, "w")`` would give it: the old file's mode when it existed, else
``0o666`` less the umask (``tempfile.mkstemp`` would give ``0o600``).

Forms:

- :func:`write_bytes_atomic` / :func:`write_text_atomic`: content in memory.
- :func:`atomic_open`: a file object for writers that stream (``csv``,
  ``json.dump``, ``torch.save``).
- :func:`atomic_path`: a temporary path for writers that want a file name
  (matplotlib ``savefig``, ``QPixmap.save``); it keeps the destination's suffix.
- :func:`atomic_directory` / :func:`replace_directory`: a folder built aside and
  then swapped in (crop-cache shards, the demo dataset).
- :func:`move_into_place`: a finished file from the same folder (e.g. the
  ``.raw`` and ``.mhd`` that SimpleITK wrote into a temporary folder).

Before any of them, a command checks where its outputs go with
:func:`check_output_path` / :func:`check_output_paths` / :func:`check_output_folder`:
an output never replaces an input of the same run, a folder, or a special
file (an atomic replace would turn ``/dev/full`` into a plain file).

Torch-free and Qt-free.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from engine.errors import OutputPathError

#: How often a fresh temporary name is tried before giving up (names are random).
_NAME_ATTEMPTS = 100


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output file that would replace an input, a folder or a special file.

    Call it before the work whose result is written, so that nothing is
    computed for an output that cannot be written there.

    Args:
        path: The output file.
        inputs: Files and folders the same run reads (a CT's header and data
            files, a dataset folder, ...). An output may not be one of these
            files, nor an existing file inside one of these folders.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: ``path`` is a folder, a device, FIFO or socket, or an input.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError("is a folder; name a file to write (nothing was written)", path)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise OutputPathError(
            "is a special file (a device, FIFO or socket), not a regular file; it is not replaced (nothing was written)",
            path,
        )
    target = path.resolve()
    for given in inputs:
        source = Path(given)
        if _same_file(target, source):
            raise OutputPathError(
                f"is an input of this run ({source}); writing there would destroy it (nothing was written)", path
            )
        if source.is_dir() and path.exists() and source.resolve() in target.parents:
            raise OutputPathError(
                f"is an existing file inside the input folder {source}; it is not replaced (nothing was written)", path
            )
    return path


def check_output_paths(outputs: Mapping[str, str | Path | None], inputs: Iterable[str | Path] = ()) -> None:
    """:func:`check_output_path` for several outputs of one run, which must also differ from each other.

    Args:
        outputs: What each output is (``"--csv"``) → its file; ``None`` entries are skipped.
        inputs: The run's input files and folders.

    Raises:
        OutputPathError: an output is refused, or two outputs name the same file.
    """
    inputs = list(inputs)
    seen: dict[Path, str] = {}
    for label, given in outputs.items():
        if given is None:
            continue
        check_output_path(given, inputs)
        target = Path(given).resolve()
        if target in seen:
            raise OutputPathError(f"is named by both {seen[target]} and {label}; give each its own file", given)
        seen[target] = label


def check_output_folder(path: str | Path, inputs: Iterable[str | Path] = (), *, replaced: bool = False) -> Path:
    """Refuse an output folder that is an existing file, or one of the run's inputs.

    Args:
        path: The folder the outputs go to (created later if missing).
        inputs: The run's input files and folders.
        replaced: The folder is replaced as a whole (an earlier export): then
            no input may lie inside it either.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: ``path`` exists but is not a folder, is an input, or
            (``replaced``) holds an input.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError("exists and is not a folder; name a folder for the outputs (nothing was written)", path)
    target = path.resolve()
    for given in inputs:
        if _same_file(target, Path(given)):
            raise OutputPathError(
                f"is an input of this run ({given}); choose another output folder (nothing was written)", path
            )
        if replaced and target in Path(given).resolve().parents:
            raise OutputPathError(
                f"holds the input {given}, and the folder is replaced by the output; choose another folder "
                "(nothing was written)",
                path,
            )
    return path


def _same_file(target: Path, other: Path) -> bool:
    """Whether ``target`` (resolved) and ``other`` name one file: same path, a link, or a hard link."""
    if target == other.resolve():
        return True
    try:
        return target.exists() and other.exists() and os.path.samefile(target, other)
    except OSError:
        return False


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (the folder is created if missing).

    Args:
        path: The destination file.
        data: Its new content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the file cannot be written; the old file is unchanged.
    """
    with atomic_open(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, line endings as given (no newline translation).

    Args:
        path: The destination file.
        text: Its new content.
        encoding: The text encoding.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the file cannot be written; the old file is unchanged.
    """
    with atomic_open(path, "w", encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO]:
    """A file object whose content replaces ``path`` when the ``with`` block ends without an error.

    Text mode writes newlines as given (``newline=""``), so ``csv`` writers
    produce the same bytes on every platform.

    Args:
        path: The destination file (its folder is created if missing).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: The text encoding (ignored in binary mode).

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not ``"w"`` or ``"wb"``.
        OSError: the file cannot be written; the old file is unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes new files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    temp, descriptor = _create_temp(path)
    try:
        if mode == "wb":
            stream = os.fdopen(descriptor, "wb")
        else:
            stream = os.fdopen(descriptor, "w", encoding=encoding, newline="")
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _rename(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file name beside ``path``; what is written there replaces ``path`` at the end.

    For writers that only take a file name. The temporary name ends in
    ``path``'s suffix, so writers that pick the format from it still work.

    Args:
        path: The destination file (its folder is created if missing).

    Yields:
        The temporary file's path (the file exists, empty, with the final mode).

    Raises:
        OSError: the file cannot be written; the old file is unchanged.
    """
    path = Path(path)
    temp, descriptor = _create_temp(path, suffix=path.suffix)
    os.close(descriptor)
    try:
        yield temp
        move_into_place(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def copy_file_atomic(source: str | Path, destination: str | Path) -> Path:
    """Copy ``source`` so that ``destination`` is always the old or the whole new file.

    Returns:
        ``destination`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: ``source`` cannot be read or ``destination`` written.
    """
    with atomic_open(destination, "wb") as target, open(source, "rb") as origin:
        shutil.copyfileobj(origin, target)
    return Path(destination)


def move_into_place(source: str | Path, destination: str | Path) -> None:
    """Flush a finished file written elsewhere (same file system) and rename it over ``destination``.

    Args:
        source: The written, closed file, on the same file system (best: the same folder).
        destination: Where it belongs.

    Raises:
        OSError: the rename fails (``source`` stays where it was).
    """
    _fsync_file(Path(source))
    _rename(source, destination)


def _rename(source: str | Path, destination: str | Path) -> None:
    """The one ``os.replace`` of the project, made durable by syncing the folder."""
    os.replace(source, destination)
    _fsync_folder(Path(destination).parent)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A new folder beside ``path`` that replaces ``path`` (and all it holds) when the block succeeds.

    Args:
        path: The destination folder (its parent is created if missing).

    Yields:
        The temporary folder to fill.

    Raises:
        OSError: the folder cannot be written; the old one is unchanged and
            the temporary one removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield temp
        replace_directory(temp, path)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def replace_directory(source: str | Path, destination: str | Path) -> None:
    """Put the finished folder ``source`` in the place of ``destination``.

    An existing ``destination`` is first renamed aside, then ``source`` renamed
    into its place, then the old one removed; if the second rename fails the
    old folder is put back. Readers see the old folder, then briefly none,
    then the new one, never a half-filled one.

    Args:
        source: The filled folder, beside ``destination``.
        destination: Where it belongs.

    Raises:
        OSError: the rename fails (``destination`` is as it was).
    """
    source, destination = Path(source), Path(destination)
    for name in source.iterdir():
        if name.is_file():
            _fsync_file(name)
    if not destination.exists():
        _rename(source, destination)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".old", dir=destination.parent))
    retired.rmdir()
    _rename(destination, retired)
    try:
        _rename(source, destination)
    except OSError:
        _rename(retired, destination)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _create_temp(path: Path, suffix: str = "") -> tuple[Path, int]:
    """Create a new, empty temporary file beside ``path`` with the mode a plain write would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    for _ in range(_NAME_ATTEMPTS):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            # 0o666 less the umask, as open(path, "w") would create it
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.chmod(temp, mode)  # an existing file keeps its mode, as a plain write would
            except BaseException:
                os.close(descriptor)
                temp.unlink(missing_ok=True)
                raise
        return temp, descriptor
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_file(path: Path) -> None:
    """Flush a closed file's content to the disk."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; Windows cannot open folders and needs no such step)."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems refuse to open folders; the rename itself is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # fsync of a folder is not supported everywhere; the rename stays atomic
    finally:
        os.close(descriptor)
