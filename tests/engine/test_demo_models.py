"""The shipped demo models: loadable safely, described by their cards, and finding the demo series' nodules."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from engine.checkpoints import load_checkpoint
from engine.ct import CtVolume
from engine.detection import Detector, default_weight_paths
from engine.geometry import Geometry, irc_to_xyz


@pytest.mark.parametrize("kind", ["segmentation", "classifier", "malignancy"])
def test_demo_weights_load_safely_and_match_their_card(kind):
    path = default_weight_paths()[kind]
    checkpoint = load_checkpoint(path, expected_kind=kind)
    assert checkpoint.optimizer_state is None, "shipped weights carry no optimizer state"
    assert path.stat().st_size < 2_000_000
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert re.search(r"weights sha256: `([0-9a-f]{64})`", card).group(1) == checkpoint.sha256
    assert "Not for clinical use" in card and "synthetic" in card
    if kind == "malignancy":  # fine-tuned from the shipped classifier: detection shares its trunk
        classifier = load_checkpoint(default_weight_paths()["classifier"], expected_kind="classifier")
        assert checkpoint.metadata["source_id"] == classifier.model_id


def _slab(ct: CtVolume, first: int, stop: int) -> CtVolume:
    """Slices ``first:stop`` of ``ct`` as a volume of their own (origin moved to slice ``first``)."""
    origin = tuple(float(v) for v in irc_to_xyz(ct.geometry, (first, 0, 0)))
    geometry = Geometry(origin_xyz=origin, spacing_xyz=ct.geometry.spacing_xyz, direction=ct.geometry.direction)
    return dataclasses.replace(ct, hu=np.ascontiguousarray(ct.hu[first:stop]), geometry=geometry)


def test_demo_models_find_the_demo_series_solid_nodules():
    from engine.demo import DEMO_PRESET, DEMO_SEED
    from engine.phantom import generate_series

    ct, truth = generate_series(DEMO_SEED, DEMO_PRESET)
    detector = Detector.default(device="cpu")
    solid = [n for n in truth.nodules if n.kind == "solid"]
    assert len(solid) == 2
    for nodule in solid:
        k = nodule.center_irc[0]
        slab = _slab(ct, max(0, k - 20), min(ct.shape[0], k + 20))
        result = detector.detect(slab)
        hits = [
            c for c in result.candidates
            if np.linalg.norm(np.subtract(c.center_xyz, nodule.center_xyz)) < nodule.diameter_mm / 2
        ]
        assert hits, f"no candidate on the {nodule.diameter_mm:.1f} mm nodule"
        best = max(hits, key=lambda c: c.p_nodule)
        assert best.p_nodule > 0.9
        if nodule.is_malignant:
            assert best.p_malignant > 0.5
