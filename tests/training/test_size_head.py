"""``python -m training size-head``: the logistic fit, the written model, and the detector applying it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.checkpoints import load_checkpoint, save_checkpoint
from engine.crops import CLASSIFIER_CROP, classifier_input, crop_starts, gather_crops
from engine.detection import Detector
from engine.detection.classify import shared_trunk_depth
from engine.geometry import xyz_to_irc_continuous
from engine.lesion_size import crop_centre, inscribed_diameter_mm, size_aware_probability
from engine.models.classifier import NoduleClassifier
from engine.paths import MODELS_DIR
from training.cli import main
from training.size_head import cross_validated_auc, fit_logistic


def test_the_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0.0, 2.0, 40_000), rng.normal(1.8, 0.5, 40_000)])
    w_true, b_true = np.array([0.8, 1.5]), -2.5
    y = (rng.uniform(size=len(x)) < 1.0 / (1.0 + np.exp(-(x @ w_true + b_true)))).astype(float)
    coefficients = fit_logistic(x, y, l2=0.0)
    np.testing.assert_allclose(coefficients, [*w_true, b_true], atol=0.1)
    # a penalty pulls the weights towards 0
    assert np.all(np.abs(fit_logistic(x, y, l2=1e5)[:2]) < np.abs(coefficients[:2]))
    assert cross_validated_auc(x, y, 0.0) > 0.75


def test_an_untrained_size_head_is_the_cnn_alone():
    model = NoduleClassifier(size_head=True)
    assert model.size_coefficients() == (1.0, 0.0, 0.0)
    assert NoduleClassifier().size_coefficients() is None


def test_the_command_writes_a_size_aware_model_on_the_same_cnn(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "mal_size.pt"
    source = MODELS_DIR / "malignancy.pt"
    assert main(["size-head", "--data", str(tiny_dataset.root), "--malignancy", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fitted on 9 nodules" in printed
    written = load_checkpoint(out, "malignancy")  # weights_only: loads without pickled code
    original = load_checkpoint(source, "malignancy")
    a, b, c = written.model.size_coefficients()
    assert written.metadata["size_head"]["coefficients"] == pytest.approx([a, b, c])
    assert written.metadata["size_head"]["nodules"] == 9
    # in the tiny set a nodule is malignant when ≥ 10 mm: the size is what separates
    assert b > 0
    assert written.metadata["size_head"]["auc_size_aware"] == pytest.approx(1.0)
    # the CNN is untouched: the whole trunk and the head are the source's
    assert shared_trunk_depth(written.model, original.model) == len(NoduleClassifier.TRUNK)
    torch.testing.assert_close(written.model.head_linear.weight, original.model.head_linear.weight)
    assert written.sha256 != original.sha256


def test_the_command_refuses_a_dataset_without_both_classes(write_tiny_dataset, tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "one", n_series=1, seed=3)
    code = main(["size-head", "--data", str(data.root), "--malignancy", str(MODELS_DIR / "malignancy.pt"),
                 "--out", str(tmp_path / "x.pt")])
    assert code == 2
    assert "too few" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_the_detector_applies_the_size_head(tiny_dataset, tmp_path):
    shipped = load_checkpoint(MODELS_DIR / "malignancy.pt", "malignancy")
    cnn_state = {k: v for k, v in shipped.model.state_dict().items() if not k.startswith("size_head.")}
    cnn_args = {k: v for k, v in shipped.model_args.items() if k != "size_head"}
    save_checkpoint(tmp_path / "cnn.pt", NoduleClassifier(**cnn_args), "malignancy", model_args=cnn_args)
    original = load_checkpoint(tmp_path / "cnn.pt", "malignancy")
    original.model.load_state_dict(cnn_state)
    save_checkpoint(tmp_path / "cnn.pt", original.model, "malignancy", model_args=cnn_args)
    args = {**cnn_args, "size_head": True}
    model = NoduleClassifier(**args)
    model.load_state_dict(cnn_state, strict=False)
    coefficients = (0.5, 2.0, -4.0)
    with torch.no_grad():
        model.size_head.weight.copy_(torch.tensor([coefficients[:2]]))
        model.size_head.bias.fill_(coefficients[2])
    path = tmp_path / "mal.pt"
    save_checkpoint(path, model, "malignancy", model_args=args)
    plain = Detector.from_checkpoints(malignancy=tmp_path / "cnn.pt", device="cpu")
    aware = Detector.from_checkpoints(malignancy=path, device="cpu")
    assert aware.shared_depth == plain.shared_depth  # the trunk is still shared with the classifier

    from engine.luna import LunaIndex

    index = LunaIndex.open(tiny_dataset.root, read_candidates=False)
    uid = index.series_uids[1]
    ct = index.load(uid)
    xyz = np.array([a.center_xyz for a in index.annotations_for(uid)])
    p_nodule_plain, p_cnn = plain.classify_points(ct, xyz)
    p_nodule_aware, p_malignant = aware.classify_points(ct, xyz)
    np.testing.assert_array_equal(p_nodule_aware, p_nodule_plain)
    irc = xyz_to_irc_continuous(ct.geometry, xyz)
    starts = crop_starts(irc, CLASSIFIER_CROP, ct.shape)
    crops = gather_crops(ct.hu, starts + crop_centre(CLASSIFIER_CROP), CLASSIFIER_CROP)
    diameters = inscribed_diameter_mm(crops, ct.geometry.spacing_irc, irc - starts)
    np.testing.assert_allclose(p_malignant, size_aware_probability(coefficients, p_cnn, diameters), rtol=1e-9)
    with torch.inference_mode():
        alone = original.model(classifier_input(torch.from_numpy(crops.astype(np.float32))))[1][:, 1].double().numpy()
    np.testing.assert_allclose(p_cnn, alone, atol=1e-5)
    assert not np.allclose(p_malignant, p_cnn)
    assert math.isfinite(float(p_malignant.sum()))


def test_training_from_a_model_with_a_size_head_continues_its_cnn_only(tmp_path):
    from training.classifier_task import load_all_weights

    model = NoduleClassifier()
    info = load_all_weights(model, str(MODELS_DIR / "malignancy.pt"))
    assert info["init_dropped"] == "size_head" and info["init_kind"] == "malignancy"
    shipped = load_checkpoint(MODELS_DIR / "malignancy.pt", "malignancy").model
    torch.testing.assert_close(model.head_linear.weight, shipped.head_linear.weight)
    # the shipped classifier has a shape head, which is dropped the same way; a plain CNN drops nothing
    assert load_all_weights(NoduleClassifier(), str(MODELS_DIR / "classifier.pt"))["init_dropped"] == "shape_head"
    save_checkpoint(tmp_path / "plain.pt", NoduleClassifier(), "classifier", model_args={})
    assert "init_dropped" not in load_all_weights(NoduleClassifier(), str(tmp_path / "plain.pt"))
