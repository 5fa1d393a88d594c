"""``python -m training shape-head``: the intercept rule, the written model, and the detector applying it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.checkpoints import load_checkpoint, save_checkpoint
from engine.detection import Detector
from engine.detection.classify import shared_trunk_depth
from engine.detection.grouping import carried_probabilities
from engine.lesion_shape import INPUT_NAMES, features_at, head_inputs, shape_aware_probability
from engine.models.classifier import NoduleClassifier
from engine.paths import MODELS_DIR
from training.cli import main
from training.shape_head import intercept_shift


def _cnn_only(path, tmp_path):
    """The classifier at ``path`` without a shape head, saved under tmp_path."""
    source = load_checkpoint(path, "classifier")
    args = {k: v for k, v in source.model_args.items() if k != "shape_head"}
    model = NoduleClassifier(**args)
    model.load_state_dict({k: v for k, v in source.model.state_dict().items() if not k.startswith("shape_head.")})
    out = tmp_path / "cnn.pt"
    save_checkpoint(out, model, "classifier", model_args=args)
    return out, model, args


def test_the_intercept_puts_the_asked_false_positives_above_one_half():
    logits = np.array([3.0, 2.0, 1.0, 0.0, -1.0, 5.0])
    negatives = np.array([True, True, True, True, True, False])
    shift = intercept_shift(logits, negatives, n_scans=2, fp_per_scan=1.0)  # 2 negatives above
    assert shift == pytest.approx(-1.5)
    assert int(((logits + shift) > 0)[negatives].sum()) == 2
    assert int(((logits + intercept_shift(logits, negatives, 2, 0.0)) > 0)[negatives].sum()) == 0
    assert int(((logits + intercept_shift(logits, negatives, 2, 10.0)) > 0)[negatives].sum()) == 5


def test_an_untrained_shape_head_is_the_cnn_alone():
    coefficients = NoduleClassifier(shape_head=True).shape_coefficients()
    assert coefficients == (1.0,) + (0.0,) * (len(INPUT_NAMES) - 1) + (0.0,)
    assert NoduleClassifier().shape_coefficients() is None


def _forget_some_nodules(root) -> None:
    """Drop every other annotation, so the detections on those nodules count as false positives."""
    for name in ("annotations.csv", "annotations_with_malignancy.csv"):
        path = root / name
        if path.exists():
            lines = path.read_text().splitlines()
            path.write_text("\n".join([lines[0], *lines[1::2]]) + "\n")


def test_the_command_refuses_data_without_false_positives(write_tiny_dataset, tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "one", n_series=1, seed=3)
    out = tmp_path / "x.pt"
    assert main(["shape-head", "--data", str(data.root), "--out", str(out), "--device", "cpu"]) == 2
    assert "too few of a class" in capsys.readouterr().err  # a tiny series' candidates are all on nodules
    assert not out.exists()


def test_the_command_writes_a_shape_aware_classifier_on_the_same_cnn(tiny_dataset, tmp_path, capsys):
    cnn, _, _ = _cnn_only(MODELS_DIR / "classifier.pt", tmp_path)
    out = tmp_path / "cls_shape.pt"
    _forget_some_nodules(tiny_dataset.root)
    argv = ["shape-head", "--data", str(tiny_dataset.root), "--cls", str(cnn), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fitted on" in printed and "CPM on them" in printed
    written = load_checkpoint(out, "classifier")  # weights_only: loads without pickled code
    fitted = written.metadata["shape_head"]
    assert fitted["coefficients"] == pytest.approx(list(written.model.shape_coefficients()), rel=1e-6)
    assert fitted["inputs"] == list(INPUT_NAMES) and fitted["series"] == 6
    assert fitted["grouping"]["method"] == "peaks"
    original = load_checkpoint(cnn, "classifier")
    assert shared_trunk_depth(written.model, original.model) == len(NoduleClassifier.TRUNK)
    torch.testing.assert_close(written.model.head_linear.weight, original.model.head_linear.weight)
    cached = sorted((tiny_dataset.root / "shape-head-detections" / "series").glob("*.json"))
    assert len(cached) == 6
    # a second fit (another penalty) reuses the detections, and refitting from the written model works too
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main([*argv[:-2], "--l2", "5", "--device", "cpu"]) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_the_detector_applies_the_shape_head_to_its_candidates(tiny_dataset, tmp_path):
    cnn, model_cnn, args = _cnn_only(MODELS_DIR / "classifier.pt", tmp_path)
    head_args = {**args, "shape_head": True}
    model = NoduleClassifier(**head_args)
    model.load_state_dict(model_cnn.state_dict(), strict=False)
    coefficients = np.zeros(len(INPUT_NAMES) + 1)
    coefficients[0], coefficients[INPUT_NAMES.index("ln_voxels")], coefficients[-1] = 0.7, 0.4, -1.0
    coefficients[INPUT_NAMES.index("hessian_2mm_3")] = -0.01
    with torch.no_grad():
        model.shape_head.weight.copy_(torch.tensor(coefficients[None, :-1], dtype=torch.float32))
        model.shape_head.bias.fill_(float(coefficients[-1]))
    path = tmp_path / "cls.pt"
    save_checkpoint(path, model, "classifier", model_args=head_args)
    plain = Detector.from_checkpoints(classifier=cnn, device="cpu")
    aware = Detector.from_checkpoints(classifier=path, device="cpu")
    assert aware.shared_depth == plain.shared_depth

    from engine.luna import LunaIndex

    index = LunaIndex.open(tiny_dataset.root, read_candidates=False)
    ct = index.load(index.series_uids[1])
    before, after = plain.detect(ct), aware.detect(ct)
    assert len(before.candidates) == len(after.candidates) > 0
    irc = np.array([c.center_irc for c in before.candidates])
    counts = np.array([c.voxel_count for c in before.candidates])
    p_cnn = np.array([c.p_nodule for c in before.candidates])
    spacing = ct.geometry.spacing_irc
    used = np.asarray(model.shape_coefficients())  # the float32 weights as stored
    expected = shape_aware_probability(used, head_inputs(p_cnn, features_at(ct.hu, spacing, irc), counts, spacing))
    np.testing.assert_allclose([c.p_nodule for c in after.candidates], expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal([c.p_malignant for c in after.candidates], [c.p_malignant for c in before.candidates])
    assert not np.allclose(expected, p_cnn)
    # a point is no grouped candidate: classify_points gives the CNN's probability
    points = np.array([c.center_xyz for c in before.candidates[:2]])
    np.testing.assert_allclose(aware.classify_points(ct, points)[0], plain.classify_points(ct, points)[0])


def test_a_regrouping_keeps_a_probability_only_for_the_same_crop_and_region(tiny_dataset):
    from engine.luna import LunaIndex

    index = LunaIndex.open(tiny_dataset.root, read_candidates=False)
    ct = index.load(index.series_uids[1])
    result = Detector.default(device="cpu").detect(ct)
    from engine.crops import CLASSIFIER_CROP, crop_starts

    starts = crop_starts(np.array([c.center_irc for c in result.candidates]), CLASSIFIER_CROP, ct.shape)
    counts = np.array([c.voxel_count for c in result.candidates])
    same, _ = carried_probabilities(result, starts, CLASSIFIER_CROP, counts)
    np.testing.assert_array_equal(same, [c.p_nodule for c in result.candidates])
    grown, _ = carried_probabilities(result, starts, CLASSIFIER_CROP, counts + 1)
    assert np.isnan(grown).all()
    assert not np.isnan(carried_probabilities(result, starts, CLASSIFIER_CROP)[0]).any()  # no sizes: crop only


def test_training_from_a_model_with_a_shape_head_continues_its_cnn_only(tmp_path):
    from training.classifier_task import load_all_weights

    source = load_checkpoint(MODELS_DIR / "classifier.pt", "classifier")
    args = {**{k: v for k, v in source.model_args.items() if k != "shape_head"}, "shape_head": True}
    model = NoduleClassifier(**args)
    model.load_state_dict(source.model.state_dict(), strict=False)
    save_checkpoint(tmp_path / "head.pt", model, "classifier", model_args=args)
    fresh = NoduleClassifier()
    info = load_all_weights(fresh, str(tmp_path / "head.pt"))
    assert info["init_dropped"] == "shape_head"
    torch.testing.assert_close(fresh.head_linear.weight, source.model.head_linear.weight)


def test_fine_tuning_from_a_classifier_with_a_shape_head_takes_its_trunk():
    from training.classifier_task import load_backbone

    model = NoduleClassifier()
    info = load_backbone(model, str(MODELS_DIR / "classifier.pt"))
    assert info["source_kind"] == "classifier"
    shipped = load_checkpoint(MODELS_DIR / "classifier.pt", "classifier").model
    torch.testing.assert_close(model.block4.conv2.weight, shipped.block4.conv2.weight)

