"""A whole :class:`~engine.detection.result.DetectionResult` as bytes, for ``POST /v1/detect?include=probability``.

The body is an ``.npz`` archive (``np.savez_compressed``) of two plain arrays,
never a pickle (read with ``allow_pickle=False``):

* ``result.json`` — ``uint8`` UTF-8 bytes of a JSON object
  ``{"format": "lungcad-result", "version": 1, "result": {...}, "findings": {...}}``:
  ``result`` holds every field of the result at full precision (floats as
  Python writes them, so they read back bit for bit), ``findings`` is
  :func:`engine.export.findings_to_json` (what ``analyze --json`` prints), for
  clients that only want the findings.
* ``seg_probability`` — the ``uint8 (index, row, col)`` probability levels.

Torch-free: the viewer's remote detector (:mod:`engine.serve.client`) decodes it.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Mapping

import numpy as np

from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.geometry import Geometry

RESULT_FORMAT = "lungcad-result"
RESULT_VERSION = 1
#: Names of the two arrays in the archive.
JSON_KEY = "result.json"
PROBABILITY_KEY = "seg_probability"
#: The media type of the archive.
MEDIA_TYPE = "application/octet-stream"


class ResultFormatError(ValueError):
    """The bytes are not a result archive this version reads."""


def result_to_json(result: DetectionResult) -> dict[str, Any]:
    """Every field of ``result`` except the probability volume, as plain JSON values (full precision)."""
    geometry = result.geometry
    return {
        "series_uid": result.series_uid,
        "shape": list(result.shape),
        "geometry": {
            "origin_xyz": list(geometry.origin_xyz),
            "spacing_xyz": list(geometry.spacing_xyz),
            "direction": list(geometry.direction),
        },
        "candidates": [
            {
                "id": c.id,
                "center_irc": list(c.center_irc),
                "center_xyz": list(c.center_xyz),
                "p_nodule": c.p_nodule,
                "p_malignant": c.p_malignant,
                "voxel_count": c.voxel_count,
                "diameter_mm": c.diameter_mm,
                "bbox_irc": [list(c.bbox_irc[0]), list(c.bbox_irc[1])],
            }
            for c in result.candidates
        ],
        "grouping": result.grouping.as_dict(),
        "timings": dict(result.timings),
        "device": result.device,
        "model_ids": dict(result.model_ids),
        "precision": result.precision,
        "messages": list(result.messages),
        "segmented_slices": result.segmented_slices,
        "roi_irc": [list(result.roi_irc[0]), list(result.roi_irc[1])],
        "extra": _plain(result.extra),
    }


def result_from_json(payload: Mapping[str, Any], seg_probability: np.ndarray) -> DetectionResult:
    """Rebuild a result from :func:`result_to_json` output and its probability levels.

    Raises:
        ResultFormatError: a field is missing or of the wrong kind.
    """
    try:
        geometry = payload["geometry"]
        candidates = tuple(
            Candidate(
                id=int(c["id"]),
                center_irc=_triple(c["center_irc"], float),
                center_xyz=_triple(c["center_xyz"], float),
                p_nodule=float(c["p_nodule"]),
                p_malignant=float(c["p_malignant"]),
                voxel_count=int(c["voxel_count"]),
                diameter_mm=float(c["diameter_mm"]),
                bbox_irc=(_triple(c["bbox_irc"][0], int), _triple(c["bbox_irc"][1], int)),
            )
            for c in payload["candidates"]
        )
        return DetectionResult(
            series_uid=str(payload["series_uid"]),
            shape=_triple(payload["shape"], int),
            geometry=Geometry(
                tuple(geometry["origin_xyz"]), tuple(geometry["spacing_xyz"]), tuple(geometry["direction"])
            ),
            candidates=candidates,
            seg_probability=seg_probability,
            grouping=GroupingSettings.from_dict(payload["grouping"]),
            timings={str(k): float(v) for k, v in payload["timings"].items()},
            device=str(payload["device"]),
            model_ids={str(k): str(v) for k, v in payload["model_ids"].items()},
            precision=str(payload["precision"]),
            messages=tuple(str(m) for m in payload["messages"]),
            segmented_slices=int(payload["segmented_slices"]),
            roi_irc=(_triple(payload["roi_irc"][0], int), _triple(payload["roi_irc"][1], int)),
            extra=dict(payload.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ResultFormatError(f"the result is incomplete or malformed: {type(exc).__name__}: {exc}") from None


def encode_result(result: DetectionResult, findings: Mapping[str, Any] | None = None) -> bytes:
    """The ``.npz`` bytes of ``result`` (and the findings JSON, when given)."""
    document = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "result": result_to_json(result)}
    if findings is not None:
        document["findings"] = dict(findings)
    text = json.dumps(document, allow_nan=True).encode("utf-8")
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        **{JSON_KEY: np.frombuffer(text, dtype=np.uint8), PROBABILITY_KEY: np.ascontiguousarray(result.seg_probability)},
    )
    return buffer.getvalue()


def decode_result(data: bytes) -> tuple[DetectionResult, dict[str, Any]]:
    """Read :func:`encode_result` bytes (no pickles are ever loaded).

    Returns:
        The result and the whole JSON document (``findings`` included when sent).

    Raises:
        ResultFormatError: not such an archive, another format or version, or a malformed result.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = set(archive.files)
            if names != {JSON_KEY, PROBABILITY_KEY}:
                raise ResultFormatError(f"the archive holds {sorted(names)}, not {JSON_KEY} and {PROBABILITY_KEY}")
            text = archive[JSON_KEY]
            levels = archive[PROBABILITY_KEY]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, ResultFormatError):
            raise
        raise ResultFormatError(f"not a result archive: {exc}") from None
    if text.dtype != np.uint8 or text.ndim != 1 or levels.dtype != np.uint8 or levels.ndim != 3:
        raise ResultFormatError("the archive's arrays have the wrong types (uint8 JSON bytes and uint8 levels expected)")
    try:
        document = json.loads(text.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultFormatError(f"the result JSON does not parse: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
        raise ResultFormatError(f"not a {RESULT_FORMAT} document")
    if document.get("version") != RESULT_VERSION:
        raise ResultFormatError(f"result version {document.get('version')!r}; this program reads version {RESULT_VERSION}")
    return result_from_json(document["result"], levels), document


def _triple(values: Any, kind: type) -> tuple:
    items = tuple(kind(v) for v in values)
    if len(items) != 3:
        raise ValueError(f"expected 3 values, got {len(items)}")
    return items


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, numpy scalars as Python numbers (for JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
