"""``manifest.json`` of an export folder: what each file is, where it came from, how it was checked.

::

    {"format": "lungcad-export", "version": 1, "opset": 18, "tolerance": 1e-4,
     "versions": {"torch": ..., "onnx": ..., "onnxruntime": ...},
     "check_inputs": {"phantom_seed": 7, "crops": 14, "slices": 5},
     "models": {"classifier": {
         "source": {"path": ..., "file_sha256": ..., "weights_sha256": ..., "model_id": ..., "model_args": {...}},
         "interface": {"inputs": [...], "outputs": [...], "hu_clip": [-1000, 1000], "preprocessing": ...},
         "files": {"onnx": {"file": "classifier.onnx", "sha256": ..., "bytes": ...,
                            "equivalence": {"max_abs_dp": ..., "passed": true, ...}}, ...},
         "int8": {...}}}}

``weights_sha256`` is :func:`engine.checkpoints.weights_sha256` (the id the
detector reports); ``file_sha256`` hashes the checkpoint file itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from engine.deploy.errors import ExportedModelError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "lungcad-export"
MANIFEST_VERSION = 1


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, fmt: str, equivalence: Mapping[str, Any] | None) -> dict[str, Any]:
    """Manifest entry of one written file (name relative to the export folder)."""
    entry: dict[str, Any] = {"format": fmt, "file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}
    if equivalence is not None:
        entry["equivalence"] = dict(equivalence)
    return entry


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that wrote (and checked) the files."""
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` into ``folder`` (the staging folder: publishing it is what makes it atomic)."""
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, allow_nan=True) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and sanity-check an export folder's manifest.

    Raises:
        ExportedModelError: no manifest, unreadable, or not ours.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ExportedModelError("not an export folder (no manifest.json)", folder)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportedModelError(f"unreadable manifest: {exc}", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ExportedModelError(f"not a {MANIFEST_FORMAT} manifest", path)
    return manifest


def verify_files(folder: str | Path) -> list[str]:
    """Check every file the manifest lists against its sha256 and size.

    Returns:
        One line per problem (missing file, size or hash mismatch); empty when all match.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    for kind, model in manifest.get("models", {}).items():
        entries = list(model.get("files", {}).values())
        if "int8" in model and "file" in model["int8"]:
            entries.append(model["int8"])
        for entry in entries:
            path = folder / entry["file"]
            if not path.is_file():
                problems.append(f"{kind}: {entry['file']} is missing")
            elif path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
                problems.append(f"{kind}: {entry['file']} does not match its sha256")
    return problems
