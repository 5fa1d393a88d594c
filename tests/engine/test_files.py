"""The atomic-write helper: content, failures that leave the old file, permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.files import (
    atomic_directory,
    atomic_open,
    atomic_path,
    copy_file_atomic,
    write_bytes_atomic,
    write_text_atomic,
)


class _Boom(Exception):
    pass


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writes_bytes_and_text_creating_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "a.bin"
    assert write_bytes_atomic(target, b"\x00\x01") == target
    assert target.read_bytes() == b"\x00\x01"
    text = tmp_path / "b.csv"
    write_text_atomic(text, "a,b\r\nä\n")
    assert text.read_bytes() == "a,b\r\nä\n".encode("utf-8")  # no newline translation
    write_text_atomic(text, "short")
    assert text.read_text(encoding="utf-8") == "short"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv", "new"]


@pytest.mark.parametrize("form", ["open", "path"])
def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, form: str) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(_Boom):
        if form == "open":
            with atomic_open(target) as stream:
                stream.write("half of the new")
                raise _Boom()
        else:
            with atomic_path(target) as temp:
                temp.write_text("half of the new", encoding="utf-8")
                raise _Boom()
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(_Boom), atomic_open(tmp_path / "x.pt", "wb") as stream:
        stream.write(b"abc")
        raise _Boom()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path: Path) -> None:
    target = tmp_path / "froc.png"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".png" and temp != target
        assert temp.is_file() and not target.exists()
        temp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not temp.exists()


def test_new_files_get_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    for write in (lambda p: write_text_atomic(p, "x"), lambda p: write_bytes_atomic(p, b"x")):
        target = tmp_path / "atomic.txt"
        target.unlink(missing_ok=True)
        write(target)
        assert _mode(target) == _mode(plain)
    with atomic_path(tmp_path / "f.png") as temp:
        temp.write_bytes(b"x")
    assert _mode(tmp_path / "f.png") == _mode(plain)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_mode_follows_umask_and_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    assert _mode(write_text_atomic(tmp_path / "new.txt", "x")) == 0o666 & ~_umask()
    kept = tmp_path / "kept.txt"
    kept.write_text("old", encoding="utf-8")
    kept.chmod(0o640)
    write_text_atomic(kept, "new")
    assert _mode(kept) == 0o640 and kept.read_text(encoding="utf-8") == "new"


def test_bad_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_open(tmp_path / "x", "a"):
        pass


def test_copy_file_atomic(tmp_path: Path) -> None:
    source = tmp_path / "last.pt"
    source.write_bytes(b"weights" * 1000)
    destination = tmp_path / "best.pt"
    destination.write_bytes(b"older")
    copy_file_atomic(source, destination)
    assert destination.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_atomic_directory_swaps_a_whole_folder(tmp_path: Path) -> None:
    final = tmp_path / "shard"
    final.mkdir()
    (final / "stale.npy").write_bytes(b"old")
    with atomic_directory(final) as temp:
        (temp / "a.npy").write_bytes(b"new")
        assert (final / "stale.npy").exists()  # the old folder stays until the block succeeds
    assert [p.name for p in final.iterdir()] == ["a.npy"]
    with pytest.raises(_Boom), atomic_directory(final) as temp:
        (temp / "b.npy").write_bytes(b"half")
        raise _Boom()
    assert [p.name for p in final.iterdir()] == ["a.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["shard"]
