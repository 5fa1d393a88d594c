"""Regenerate ``detection_fixture.json``: the demo detector's candidates on a fixed small phantom.

Run from the repository root::

    .venv/bin/python -m tests.engine.data.make_detection_fixture

The fixture was first written by the detection code *before* the speed work of
issue 16 (channels-last layouts, ONNX backend, batch sizes), so
``tests/engine/test_detector_fixture.py`` proves those changes kept the
findings. Regenerate it only when a change is meant to alter the findings
(new weights, another grouping), and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The phantom the fixture is made from (the small preset: 160×160×64).
SEED = 11
PRESET = "small"
#: Decimals of the stored centres (voxels) and probabilities.
CENTER_DECIMALS = 2
PROBABILITY_DECIMALS = 4
FIXTURE = Path(__file__).with_name("detection_fixture.json")


def fixture_phantom():
    """The fixed small phantom (CtVolume) the fixture describes."""
    from engine.phantom import generate_series

    return generate_series(SEED, PRESET)[0]


def candidate_rows(result: Any) -> list[dict[str, Any]]:
    """The result's candidates as rounded plain values, in the result's order."""
    return [
        {
            "center_irc": [round(float(v), CENTER_DECIMALS) for v in c.center_irc],
            "p_nodule": round(float(c.p_nodule), PROBABILITY_DECIMALS),
            "p_malignant": round(float(c.p_malignant), PROBABILITY_DECIMALS),
            "voxel_count": int(c.voxel_count),
        }
        for c in result.candidates
    ]


def main() -> None:
    import torch

    from engine.detection import Detector, DetectorConfig

    torch.manual_seed(0)
    ct = fixture_phantom()
    detector = Detector.from_checkpoints(device="cpu", config=DetectorConfig(precision="float32"))
    result = detector.detect(ct)
    payload = {
        "about": "demo-weight candidates on a fixed small phantom; written by make_detection_fixture.py",
        "seed": SEED,
        "preset": PRESET,
        "shape": list(ct.shape),
        "model_ids": dict(result.model_ids),
        "grouping": result.grouping.as_dict(),
        "candidates": candidate_rows(result),
    }
    FIXTURE.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {FIXTURE}: {len(payload['candidates'])} candidates")


if __name__ == "__main__":
    main()
