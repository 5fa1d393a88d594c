"""Regenerate ``detection_fixture.json``: the demo detector's candidates on a fixed small phantom.

Run from the repository root::

    .venv/bin/python -m tests.engine.data.make_detection_fixture

The fixture was first written by the detection code *before* the speed work
of issue 16 (channels-last layouts, ONNX backend, batch sizes, CPU streams: the
code at commit e64a238), so ``tests/engine/test_detector_fixture.py`` proved
those changes kept the findings; it was written again for issue 14, when the
default grouping became ``peaks`` and the classifier's stage-4 weights shipped, and once more when the
malignancy model got its size head (``p_malignant`` changes; the grouping settings now name their method), when the peaks smoothing
became 2 mm, and when the nodule classifier got its shape head (``p_nodule`` changes). Regenerate it only when a change is meant to
alter the findings (new weights, another grouping), and say so in the commit.

The phantom itself is stored (``detection_fixture_phantom.npz``, 1.7 MB), not
generated in the test: the generator's float32 ``np.sin``/``np.cos``/``np.exp``
take numpy's CPU-specific SIMD paths, which differ in the last bit between
processors, so the same seed gives a slightly different volume on an AVX2, an
AVX-512 and an Intel AVX-512-ICL machine (``NPY_DISABLE_CPU_FEATURES=X86_V4``
changes its hash here), and the candidates of a generated phantom differ by
machine. ``--new-phantom`` writes it again from seed 11 of the small preset.
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
PHANTOM = Path(__file__).with_name("detection_fixture_phantom.npz")


def fixture_phantom():
    """The fixed small phantom (CtVolume) the fixture describes, as stored in :data:`PHANTOM`."""
    import numpy as np

    from engine.geometry import Geometry
    from engine.io.volume import CtVolume

    with np.load(PHANTOM) as stored:
        hu = stored["hu"].astype(np.int16, copy=True)
        hu.flags.writeable = False
        geometry = Geometry(
            tuple(stored["origin_xyz"]), tuple(stored["spacing_xyz"]), tuple(stored["direction"])
        )
        uid = str(stored["series_uid"])
    return CtVolume(hu=hu, geometry=geometry, series_uid=uid, notes=(f"stored phantom: seed {SEED}, preset {PRESET}",))


def save_fixture_phantom() -> None:
    """Generate the phantom from :data:`SEED` and :data:`PRESET` on this machine and store it in :data:`PHANTOM`."""
    import numpy as np

    from engine.phantom import generate_series

    ct = generate_series(SEED, PRESET)[0]
    g = ct.geometry
    np.savez_compressed(
        PHANTOM, hu=ct.hu, origin_xyz=np.array(g.origin_xyz), spacing_xyz=np.array(g.spacing_xyz),
        direction=np.array(g.direction), series_uid=np.array(ct.series_uid),
    )


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
    import sys

    import torch

    from engine.detection import Detector, DetectorConfig

    if "--new-phantom" in sys.argv[1:]:
        save_fixture_phantom()
        print(f"wrote {PHANTOM}")
    torch.manual_seed(0)
    ct = fixture_phantom()
    detector = Detector.from_checkpoints(device="cpu", config=DetectorConfig(precision="float32"))
    result = detector.detect(ct)
    payload = {
        "about": "demo-weight candidates on the stored small phantom; written by make_detection_fixture.py",
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
