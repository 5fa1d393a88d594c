"""Exporting findings: the LUNA16 submission CSV and a JSON findings file.

The CSV is the LUNA16 submission format (``seriesuid,coordX,coordY,coordZ,
probability``, world LPS mm). The JSON holds every candidate with voxel
(index,row,col) and LPS-mm coordinates, both probabilities, diameters, the
model ids and a not-for-clinical-use note. Both files are written atomically.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from engine.detection.result import NOT_FOR_CLINICAL_USE, DetectionResult
from engine.files import atomic_open

LUNA_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "probability")
FINDINGS_FORMAT = "lungcad-findings"
FINDINGS_VERSION = 1

LunaRow = tuple[str, float, float, float, float]


def luna_rows(result: DetectionResult, max_marks: int | None = None) -> list[LunaRow]:
    """Submission rows of one result, most probable first.

    Args:
        result: A detection result.
        max_marks: Keep at most this many rows (LUNA16 allows 100 per scan); None keeps all.

    Returns:
        ``(seriesuid, x, y, z, p_nodule)`` tuples, coordinates in LPS mm.
    """
    ordered = sorted(result.candidates, key=lambda c: -c.p_nodule)
    if max_marks is not None:
        ordered = ordered[:max_marks]
    return [(result.series_uid, *c.center_xyz, c.p_nodule) for c in ordered]


def write_luna_csv(rows: Iterable[Sequence[Any]], path: str | Path) -> Path:
    """Write LUNA16 submission rows ``(seriesuid, coordX, coordY, coordZ, probability)``.

    Args:
        rows: Tuples in column order; coordinates in LPS mm.
        path: Destination CSV (folder created if missing).

    Returns:
        The path written.
    """
    path = Path(path)
    with atomic_open(path) as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(LUNA_COLUMNS)
        for row in rows:
            uid, x, y, z, p = row
            # the probability exactly (repr reads back as the same float): rounding would create ties
            # among the many candidates near 1.0 and change the FROC ranking
            writer.writerow([uid, f"{float(x):.4f}", f"{float(y):.4f}", f"{float(z):.4f}", repr(float(p))])
    return path


def findings_to_json(
    result: DetectionResult,
    *,
    nodule_threshold: float = 0.5,
    malignancy_threshold: float = 0.5,
    source: str | Path | None = None,
    note: str = NOT_FOR_CLINICAL_USE,
) -> dict[str, Any]:
    """All candidates of a result as a JSON-ready dict.

    Args:
        result: The detection result.
        nodule_threshold: ``p_nodule`` at or above which a candidate is flagged a nodule.
        malignancy_threshold: ``p_malignant`` at or above which a nodule is flagged malignant.
        source: The CT file or folder, recorded for the reader.
        note: The disclaimer (a demo model adds that it was trained on synthetic data).

    Returns:
        A dict of plain values (see the module docstring).
    """
    geometry = result.geometry
    candidates = []
    for c in result.candidates:
        nodule = c.p_nodule >= nodule_threshold
        candidates.append(
            {
                "id": c.id,
                "center_irc": [round(v, 3) for v in c.center_irc],
                "center_xyz_mm": [round(v, 3) for v in c.center_xyz],
                "slice": c.slice_index,
                "p_nodule": c.p_nodule,
                "p_malignant": c.p_malignant,
                "is_nodule": nodule,
                "is_malignant": nodule and c.p_malignant >= malignancy_threshold,
                "diameter_mm": round(c.diameter_mm, 3),
                "voxel_count": c.voxel_count,
                "bbox_irc": {"lo": list(c.bbox_irc[0]), "hi": list(c.bbox_irc[1])},
            }
        )
    return {
        "format": FINDINGS_FORMAT,
        "version": FINDINGS_VERSION,
        "note": note,
        "series_uid": result.series_uid,
        "source": None if source is None else str(source),
        "coordinate_system": "LPS",
        "units": "mm",
        "voxel_axes": "index,row,col (z,y,x); bbox hi exclusive",
        "shape_irc": list(result.shape),
        "spacing_xyz_mm": list(geometry.spacing_xyz),
        "origin_xyz_mm": list(geometry.origin_xyz),
        "direction": list(geometry.direction),
        "device": result.device,
        "precision": result.precision,
        "model_ids": dict(result.model_ids),
        **result.grouping.as_dict(),  # seg_threshold, erosion, ...
        "nodule_threshold": nodule_threshold,
        "malignancy_threshold": malignancy_threshold,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "messages": list(result.messages),
        "n_candidates": len(candidates),
        "n_nodules": sum(1 for c in candidates if c["is_nodule"]),
        "candidates": candidates,
    }


def write_findings_json(result: DetectionResult, path: str | Path, **options: Any) -> Path:
    """Write :func:`findings_to_json` of ``result`` to ``path`` (options as there)."""
    path = Path(path)
    payload = findings_to_json(result, **options)
    with atomic_open(path) as stream:
        json.dump(payload, stream, indent=1, allow_nan=True)
    return path

