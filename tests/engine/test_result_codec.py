"""The whole-result archive (``engine.serve.result_codec``) keeps the grouping method, on hand-made results.

A result read back must name the method that grouped it: ``peaks`` (the default) and ``components`` both
come back as they went in, and a record written before the method was always named (``components`` was the
default then, and went unnamed) reads back as ``components``, not as today's default.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.geometry import Geometry
from engine.serve.result_codec import (
    JSON_KEY,
    PROBABILITY_KEY,
    RESULT_FORMAT,
    RESULT_VERSION,
    decode_result,
    encode_result,
    result_from_json,
    result_to_json,
)

SHAPE = (4, 6, 5)


def _result(grouping: GroupingSettings) -> DetectionResult:
    levels = np.zeros(SHAPE, np.uint8)
    levels[1:3, 2:4, 1:4] = 230
    candidate = Candidate(1, (1.5, 2.5, 2.0), (2.0, 2.5, 3.75), 0.8, 0.25, 12, 4.5, ((1, 2, 1), (3, 4, 4)))
    return DetectionResult(
        series_uid="1.2.3",
        shape=SHAPE,
        geometry=Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 2.5)),
        candidates=(candidate,),
        seg_probability=levels,
        grouping=grouping,
        timings={"segmentation": 0.5, "total": 0.75},
        device="cpu",
        model_ids={"segmentation": "s", "classifier": "c", "malignancy": "m"},
    )


def _archive(document: dict, levels: np.ndarray) -> bytes:
    """An archive as :func:`encode_result` writes one, around a ``document`` given as is."""
    buffer = io.BytesIO()
    text = json.dumps(document).encode("utf-8")
    np.savez_compressed(buffer, **{JSON_KEY: np.frombuffer(text, np.uint8), PROBABILITY_KEY: levels})
    return buffer.getvalue()


@pytest.mark.parametrize(
    "grouping",
    [
        GroupingSettings(),
        GroupingSettings(method="components"),
        GroupingSettings(0.3, "in-plane", method="components"),
        GroupingSettings(0.3, "none", method="peaks", merge_mm=7.0, smooth_mm=0.0),
        GroupingSettings(method="components", min_diameter_mm=4.0),
    ],
    ids=lambda g: g.describe(),
)
def test_a_decoded_result_keeps_its_grouping_and_method(grouping) -> None:
    result = _result(grouping)
    decoded, document = decode_result(encode_result(result))
    assert decoded.grouping == grouping and decoded.grouping.method == grouping.method
    assert document["result"]["grouping"]["method"] == grouping.method  # named in the archive, default or not
    assert decoded.candidates == result.candidates
    assert np.array_equal(decoded.seg_probability, result.seg_probability)


def test_peaks_and_components_results_decode_apart() -> None:
    peaks, _ = decode_result(encode_result(_result(GroupingSettings(method="peaks"))))
    book, _ = decode_result(encode_result(_result(GroupingSettings(method="components"))))
    assert (peaks.grouping.method, book.grouping.method) == ("peaks", "components")
    assert peaks.grouping != book.grouping


def test_a_result_written_without_the_method_is_components() -> None:
    """What an archive held when ``components`` was the default: threshold and erosion, no method."""
    result = _result(GroupingSettings(0.4, "in-plane", method="components"))
    payload = result_to_json(result)
    payload["grouping"] = {"seg_threshold": 0.4, "erosion": "in-plane"}
    assert result_from_json(payload, result.seg_probability).grouping == GroupingSettings(0.4, "in-plane", method="components")
    document = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "result": payload}
    decoded, _ = decode_result(_archive(document, result.seg_probability))
    assert decoded.grouping.method == "components"
    assert decoded.grouping == result.grouping
