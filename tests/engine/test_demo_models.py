"""The shipped demo models: loadable safely, described by their cards, and finding the demo series' nodules."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.checkpoints import load_checkpoint
from engine.detection import Detector, default_weight_paths


@pytest.mark.parametrize("kind", ["segmentation", "classifier", "malignancy"])
def test_demo_weights_load_safely_and_match_their_card(kind):
    path = default_weight_paths()[kind]
    checkpoint = load_checkpoint(path, expected_kind=kind)
    assert checkpoint.optimizer_state is None, "shipped weights carry no optimizer state"
    assert path.stat().st_size < 2_000_000
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert re.search(r"weights sha256: `([0-9a-f]{64})`", card).group(1) == checkpoint.sha256
    assert "Not for clinical use" in card and "synthetic" in card
    if kind == "malignancy":  # fine-tuned from (a classifier with) the shipped trunk: detection computes it once
        from engine.detection.classify import shared_trunk_depth

        classifier = load_checkpoint(default_weight_paths()["classifier"], expected_kind="classifier")
        assert shared_trunk_depth(classifier.model, checkpoint.model) == 4


def test_demo_models_find_the_demo_series_nodules_with_few_false_positives():
    """The model cards' claim: all three demo nodules (two solid, one ground-glass) found,
    called benign/malignant correctly, among about twenty findings at the default threshold."""
    from engine.demo import DEMO_PRESET, DEMO_SEED
    from engine.phantom import generate_series

    ct, truth = generate_series(DEMO_SEED, DEMO_PRESET)
    result = Detector.default(device="cpu").detect(ct)
    assert sorted(n.kind for n in truth.nodules) == ["ground-glass", "solid", "solid"]
    centres = np.array([c.center_xyz for c in result.candidates])
    p_nodule = np.array([c.p_nodule for c in result.candidates])
    for nodule in truth.nodules:
        hits = np.flatnonzero(np.linalg.norm(centres - nodule.center_xyz, axis=1) < nodule.diameter_mm / 2)
        assert hits.size, f"no candidate on the {nodule.diameter_mm:.1f} mm {nodule.kind} nodule"
        best = result.candidates[hits[np.argmax(p_nodule[hits])]]
        assert best.p_nodule > (0.8 if nodule.kind == "ground-glass" else 0.95), nodule
        assert (best.p_malignant > 0.5) == nodule.is_malignant, (nodule, best.p_malignant)
    findings = int(np.sum(p_nodule >= 0.5))
    assert 3 <= findings <= 25, f"{findings} findings at p_nodule >= 0.5"
