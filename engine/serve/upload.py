"""Uploaded CT files: size-bounded reading, format by content, safe zip extraction, private temp folders.

The server never trusts a client's file name: the format is read from the
first bytes (MetaImage ``.mha`` header, NIfTI magic, gzip → ``.nii.gz``,
``NRRD``, zip). A zip may hold a ``.mhd`` + ``.raw`` pair or a DICOM series;
names that are absolute, contain ``..``, or are links are refused, and so is
a zip whose members would expand beyond the size limit.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import AsyncIterator, Iterator

#: Largest upload accepted by default (bytes).
DEFAULT_MAX_UPLOAD = 1 << 30
#: Most members a zip may hold.
MAX_ZIP_MEMBERS = 5000


class UploadError(Exception):
    """The upload is not acceptable; ``status`` is the HTTP status to answer with.

    Args:
        message: What is wrong, for the client.
        status: 400 (bad input) or 413 (too large).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def private_folder() -> Iterator[Path]:
    """A temporary folder only this user can enter (mode 0700), removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="lungcad-upload-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def receive_to_file(chunks: AsyncIterator[bytes], path: Path, limit: int, declared: int | None) -> int:
    """Stream a request body into ``path``, refusing it as soon as it exceeds ``limit``.

    Args:
        chunks: The body (``request.stream()``).
        path: Destination file (created with mode 0600).
        limit: Most bytes accepted.
        declared: The ``Content-Length``, if the client sent one (checked before reading).

    Returns:
        Bytes written.

    Raises:
        UploadError: too large (413) or empty (400).
    """
    if declared is not None and declared > limit:
        raise UploadError(f"the body is {declared} bytes; this server accepts at most {limit}", 413)
    size = 0
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise UploadError(f"the body exceeds this server's limit of {limit} bytes", 413)
            stream.write(chunk)
    if size == 0:
        raise UploadError("the body is empty: send one CT file")
    return size


def sniff_format(path: Path) -> str:
    """``"mha"``, ``"nii"``, ``"nii.gz"``, ``"nrrd"`` or ``"zip"`` from a file's first bytes.

    Raises:
        UploadError: none of them.
    """
    with open(path, "rb") as stream:
        head = stream.read(352)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "nii.gz"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nii"
    text = head[:256].decode("latin-1")
    if any(text.lstrip().startswith(key) for key in ("ObjectType", "NDims")) and "=" in text:
        return "mha"
    raise UploadError("the body is not a CT file this server reads (.mha, .nii, .nii.gz, .nrrd, or a .zip)")


def prepare_ct(path: Path, folder: Path, limit: int) -> Path:
    """The path to hand to :func:`engine.io.ct.load_ct` for an uploaded file.

    Args:
        path: The uploaded file (in ``folder``).
        folder: The private folder of this request.
        limit: Most bytes a zip may expand to.

    Raises:
        UploadError: unknown format, or an unsafe or unusable zip.
    """
    fmt = sniff_format(path)
    if fmt != "zip":
        named = path.with_name(f"upload.{fmt}")
        path.rename(named)
        return named
    target = folder / "unzipped"
    extract_zip(path, target, limit)
    path.unlink()
    headers = sorted(p for p in target.rglob("*") if p.suffix.lower() in (".mhd", ".mha") and p.is_file())
    if len(headers) > 1:
        raise UploadError("the zip holds several MetaImage headers; send one series per request")
    if headers:
        return headers[0]
    folders = {p.parent for p in target.rglob("*") if p.is_file()}
    if not folders:
        raise UploadError("the zip is empty")
    return max(sorted(folders), key=lambda f: sum(1 for p in f.iterdir() if p.is_file()))


def extract_zip(path: Path, target: Path, limit: int) -> None:
    """Extract a zip safely into ``target``.

    Raises:
        UploadError: not a zip, too many members, a name escaping the folder, a
            link, or more than ``limit`` bytes uncompressed.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError(f"not a readable zip file: {exc}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise UploadError(f"the zip holds {len(members)} members; at most {MAX_ZIP_MEMBERS} are accepted")
        total = 0
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or (name.parts and ":" in name.parts[0]):
                raise UploadError(f"the zip member name {member.filename!r} points outside the archive")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise UploadError(f"the zip member {member.filename!r} is a link; links are not accepted")
            total += member.file_size
            if total > limit:
                raise UploadError(f"the zip expands beyond this server's limit of {limit} bytes", 413)
        target.mkdir(mode=0o700)
        for member in members:
            if member.is_dir():
                continue
            destination = target.joinpath(*PurePosixPath(member.filename.replace("\\", "/")).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with archive.open(member) as source, open(destination, "wb") as sink:
                    while block := source.read(1 << 20):
                        written += len(block)
                        if written > member.file_size:
                            raise UploadError(f"the zip member {member.filename!r} is larger than it declares")
                        sink.write(block)
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
                raise UploadError(f"the zip member {member.filename!r} is corrupt: {exc}") from None
