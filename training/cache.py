"""The on-disk crop cache (the book's ``prepcache``): one shard per series and kind.

A shard is a folder of ``.npy`` arrays plus ``meta.json`` (written last, so a
shard without it is incomplete and ignored). Its key is a sha256 of the cache
format, the kind and its parameters, the series files' names, sizes and
modification times, and the sample list (candidate or nodule centres) — so a
changed CT, CSV row or crop parameter gives a new key and the stale shard is
replaced, never silently reused. Arrays load memory-mapped; nothing reloads a
whole CT once its shard exists.

Layout: ``<root>/<kind>/<series uid>/<key[:20]>/{meta.json, <name>.npy}``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.errors import DatasetError
from engine.files import atomic_directory

#: Bump when the shard contents change meaning.
CACHE_FORMAT_VERSION = 1
_KEY_CHARS = 20


def data_files(mhd_path: Path) -> list[Path]:
    """The files a series is read from: the header and, for ``.mhd``, its data file."""
    files = [mhd_path]
    if mhd_path.suffix.lower() == ".mhd":
        from engine.io.metaimage import read_mhd_header

        name = read_mhd_header(mhd_path).get("ElementDataFile", "")
        if name and name.upper() != "LOCAL" and not name.upper().startswith("LIST") and "%" not in name:
            files.append(mhd_path.parent / name)
    return files


def file_signature(path: Path) -> str:
    """``name:size:mtime_ns`` of a file (a changed file changes its signature)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetError("is missing (needed by the crop cache)", path) from None
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def shard_key(kind: str, params: Mapping[str, Any], mhd_path: Path, samples: np.ndarray) -> str:
    """The hex key of one series' shard.

    Args:
        kind: ``"classifier"`` or ``"segmentation"``.
        params: The kind's crop parameters (JSON-serialisable).
        mhd_path: The series file.
        samples: The series' sample centres (e.g. ``(N, 3)`` float64 xyz), in order.
    """
    digest = hashlib.sha256()
    digest.update(f"v{CACHE_FORMAT_VERSION}|{kind}|{json.dumps(dict(params), sort_keys=True)}|".encode())
    for path in data_files(mhd_path):
        digest.update(file_signature(path).encode() + b"|")
    samples = np.ascontiguousarray(samples, dtype=np.float64)
    digest.update(f"{samples.shape}|".encode())
    digest.update(samples.tobytes())
    return digest.hexdigest()


class ShardCache:
    """Per-series shards under one root folder.

    Args:
        root: The cache folder (created on first write).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def shard_dir(self, kind: str, uid: str, key: str) -> Path:
        """Where a shard lives."""
        return self.root / kind / uid / key[:_KEY_CHARS]

    def has(self, kind: str, uid: str, key: str) -> bool:
        """Whether a complete shard with this key exists."""
        return (self.shard_dir(kind, uid, key) / "meta.json").is_file()

    def load(self, kind: str, uid: str, key: str, mmap: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Read a shard's arrays (memory-mapped by default) and its metadata.

        Raises:
            DatasetError: the shard is missing or damaged (run ``prepcache`` again).
        """
        folder = self.shard_dir(kind, uid, key)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = {
                name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
                for name in meta["arrays"]
            }
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"crop cache shard is damaged ({exc}); delete it or run prepcache", folder) from None
        return arrays, meta

    def store(self, kind: str, uid: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
        """Write a shard atomically and delete the series' stale shards of this kind.

        Args:
            kind: The cache kind.
            uid: The series uid.
            key: From :func:`shard_key`.
            arrays: Name → array (saved as ``<name>.npy``, no pickles).
            meta: JSON-serialisable facts about the series (e.g. its shape).

        Returns:
            The shard folder.
        """
        final = self.shard_dir(kind, uid, key)
        series_dir = final.parent
        series_dir.mkdir(parents=True, exist_ok=True)
        with atomic_directory(final) as temp:
            for name, array in arrays.items():
                np.save(temp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            record = {**dict(meta), "arrays": list(arrays), "key": key, "format_version": CACHE_FORMAT_VERSION}
            (temp / "meta.json").write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        for other in series_dir.iterdir():
            if other != final and other.is_dir() and not other.name.startswith("."):
                shutil.rmtree(other, ignore_errors=True)
        return final
