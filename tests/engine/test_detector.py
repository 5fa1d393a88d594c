"""The Detector end to end on small synthetic volumes with tiny models."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import engine.paths
from engine.checkpoints import save_checkpoint
from engine.crops import classifier_input, context_slices, gather_crops
from engine.detection import Detector, DetectorConfig, GroupingSettings
from engine.detection import detector as detector_module
from engine.detection.classify import shared_trunk_depth
from engine.detection.grouping import equivalent_diameter_mm
from engine.errors import CancelledError, CheckpointError, CheckpointKindError
from tests.engine.fake_chest import (
    NODULES,
    DenseTissueSegmentation,
    lung_block,
    small_chest,
    tiny_classifier,
    tiny_segmentation,
)

STAGES = ("lung_search", "segmentation", "grouping", "classification", "malignancy", "total")


@pytest.fixture(scope="module")
def ct():
    return lung_block()


@pytest.fixture(scope="module")
def detector():
    return Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")


@pytest.fixture(scope="module")
def result(detector, ct):
    return detector.detect(ct)


def _direct_probability(model, ct, centers_irc) -> np.ndarray:
    crops = torch.from_numpy(gather_crops(ct.hu, centers_irc))
    with torch.inference_mode():
        return model(classifier_input(crops))[1][:, 1].double().numpy()


def test_detect_finds_the_spheres(result, ct):
    assert len(result.candidates) == len(NODULES)
    found = np.array([c.center_irc for c in result.candidates])
    for (centre, radius) in NODULES:
        distance = np.linalg.norm(found - np.array(centre), axis=1)
        best = int(np.argmin(distance))
        assert distance[best] < 0.3
        candidate = result.candidates[best]
        grid = np.indices(ct.shape)
        ball = sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius**2
        expected = equivalent_diameter_mm([ball.sum()], ct.geometry.spacing_irc)[0]
        assert candidate.diameter_mm == pytest.approx(expected, rel=0.15)
        lo, hi = candidate.bbox_irc
        assert all(lo[a] <= centre[a] < hi[a] for a in range(3))
    assert [c.id for c in result.candidates] == [1, 2, 3]


def test_result_fields(result, ct, detector):
    assert result.shape == ct.shape and result.series_uid == ct.series_uid
    assert result.seg_probability.dtype == np.uint8 and result.seg_probability.shape == ct.shape
    assert not result.seg_probability.flags.writeable
    assert set(result.timings) == set(STAGES) and all(v >= 0 for v in result.timings.values())
    assert result.device == "cpu" and result.precision == "float32"
    assert set(result.model_ids) == {"segmentation", "classifier", "malignancy"}
    assert result.model_ids["classifier"].startswith("classifier:")
    assert result.seg_threshold == 0.5 and result.geometry == ct.geometry
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.seg_threshold = 0.2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.candidates[0].p_nodule = 1.0  # type: ignore[misc]


def test_probabilities_are_the_models_outputs(result, ct, detector):
    centres = np.array([c.center_irc for c in result.candidates])
    assert_allclose([c.p_nodule for c in result.candidates], _direct_probability(detector.classifier, ct, centres), atol=1e-6)
    assert_allclose([c.p_malignant for c in result.candidates], _direct_probability(detector.malignancy, ct, centres), atol=1e-6)
    xyz = result.centers_xyz()
    p_nodule, p_malignant = detector.classify_points(ct, xyz)
    assert_allclose(p_nodule, result.p_nodule(), atol=1e-6)
    assert_allclose(detector.malignancy_at(ct, xyz), result.p_malignant(), atol=1e-6)


def test_probability_volume_is_the_segmentation_output(result, ct, detector):
    for index in (0, 8, ct.shape[0] - 1):
        x = torch.from_numpy(context_slices(ct.hu, [index]))
        with torch.inference_mode():
            p = detector.segmentation(x)[0, 0].numpy()
        assert_array_equal(result.seg_probability[index], np.rint(p * 255).astype(np.uint8))


def test_regroup_at_the_same_threshold_reproduces_detect(result, ct, detector):
    again = detector.regroup(result, ct, GroupingSettings())
    assert again.candidates == result.candidates
    assert again.seg_probability is result.seg_probability or np.array_equal(again.seg_probability, result.seg_probability)


def test_regroup_equals_detect_at_the_new_threshold(result, ct, detector):
    lower = Detector(
        detector.segmentation, detector.classifier, detector.malignancy, device="cpu",
        config=DetectorConfig(grouping=GroupingSettings(seg_threshold=0.05)),
    ).detect(ct)
    regrouped = detector.regroup(result, ct, GroupingSettings(seg_threshold=0.05))
    assert regrouped.seg_threshold == 0.05 and regrouped.grouping == GroupingSettings(seg_threshold=0.05)
    assert len(regrouped.candidates) == len(lower.candidates)
    for a, b in zip(regrouped.candidates, lower.candidates):
        assert a.center_irc == b.center_irc and a.voxel_count == b.voxel_count
        assert a.p_nodule == pytest.approx(b.p_nodule, abs=1e-6)
    assert "segmentation" not in regrouped.timings
    reports = []
    detector.regroup(result, ct, GroupingSettings(seg_threshold=0.3), progress=lambda f, text: reports.append(f))
    assert 0.0 <= reports[0] <= 0.15 and reports[-1] == pytest.approx(1.0)
    assert reports == sorted(reports)


def test_regroup_with_another_erosion_equals_detect_with_it(result, ct, detector):
    assert result.grouping == GroupingSettings(seg_threshold=0.5, erosion="3d")
    # the erosion acts in the book's components method only (the default, peaks, does not erode)
    in_plane_settings = GroupingSettings(method="components", erosion="in-plane")
    in_plane = Detector(
        detector.segmentation, detector.classifier, detector.malignancy, device="cpu",
        config=DetectorConfig(grouping=in_plane_settings),
    ).detect(ct)
    assert in_plane.grouping == in_plane_settings
    regrouped = detector.regroup(result, ct, in_plane_settings)
    assert regrouped.grouping == in_plane_settings and regrouped.seg_threshold == 0.5
    assert in_plane.candidates and [c.center_irc for c in regrouped.candidates] == [c.center_irc for c in in_plane.candidates]
    with pytest.raises(TypeError, match="GroupingSettings"):
        detector.regroup(result, ct, 0.5)  # type: ignore[arg-type]


def test_regroup_reuses_known_probabilities(result, ct, detector, monkeypatch):
    calls = []
    original = detector_module.classify_crops

    def counting(model, volume, starts, **kwargs):
        calls.append(len(starts))
        return original(model, volume, starts, **kwargs)

    monkeypatch.setattr(detector_module, "classify_crops", counting)
    detector.regroup(result, ct, GroupingSettings())
    assert calls == [0, 0], "no candidate needed classifying again"


def test_cancellation_between_batches(ct, detector):
    with pytest.raises(CancelledError):
        detector.detect(ct, cancelled=lambda: True)
    polls = []

    def cancel_during_segmentation() -> bool:
        polls.append(1)
        return len(polls) > 4

    small_batches = Detector(detector.segmentation, detector.classifier, detector.malignancy, device="cpu",
                             config=DetectorConfig(seg_batch_size=2))
    reports = []
    with pytest.raises(CancelledError, match="segmentation"):
        small_batches.detect(ct, progress=lambda f, t: reports.append((f, t)), cancelled=cancel_during_segmentation)
    assert reports and all(0 <= f < 0.75 for f, _ in reports)


def test_progress_is_monotonic_and_names_every_stage(ct, detector):
    reports = []
    detector.detect(ct, progress=lambda f, text: reports.append((f, text)))
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    texts = " ".join(t for _, t in reports)
    for stage in ("lung search", "segmentation", "grouping", "classification", "malignancy"):
        assert stage in texts


def test_out_of_memory_retries_with_smaller_batches(ct, detector, result):
    seg = DenseTissueSegmentation()
    plain_forward = seg.forward

    def forward(x):
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return plain_forward(x)

    seg.forward = forward
    flaky = Detector(seg, detector.classifier, detector.malignancy, device="cpu", config=DetectorConfig(seg_batch_size=8))
    out = flaky.detect(ct)
    assert_array_equal(out.seg_probability, result.seg_probability)
    assert out.candidates == result.candidates
    notes = " ".join(out.messages)
    assert "batches of 8; retried with 4" in notes and "batches of 2; retried with 1" in notes


def test_out_of_memory_with_one_item_falls_back_to_cpu(ct, detector):
    run = detector_module._Run(detector, ct, None, None)
    run.policy = dataclasses.replace(run.policy, device=torch.device("cuda"))  # pretend: no tensor goes there
    devices = []

    def work(device):
        devices.append(device.type)
        if device.type == "cuda":
            raise detector_module.StageOutOfMemory("segmentation", device)
        return "done"

    assert run.timed("segmentation", "segmentation", work) == "done"
    assert devices == ["cuda", "cpu"]
    assert run.device_used.type == "cpu" and run.precision_used == "float32"
    assert "fell back to the CPU" in run.notes[0]
    assert "segmentation" in run.timings


def test_out_of_memory_on_the_cpu_is_an_error(ct, detector):
    from engine.errors import DeviceError

    run = detector_module._Run(detector, ct, None, None)

    def work(device):
        raise detector_module.StageOutOfMemory("classification", device)

    with pytest.raises(DeviceError, match="too large"):
        run.timed("classification", "classification", work)


def test_shared_trunk_gives_the_same_malignancy(ct):
    classifier = tiny_classifier(1)
    malignancy = copy.deepcopy(classifier)
    torch.manual_seed(5)
    malignancy.block4.conv2.reset_parameters()
    malignancy.head_linear.reset_parameters()
    assert shared_trunk_depth(classifier, malignancy) == 4
    assert shared_trunk_depth(classifier, classifier) == 5
    assert shared_trunk_depth(classifier, tiny_classifier(2)) == 1  # only the input batch norm is the same
    det = Detector(DenseTissueSegmentation(), classifier, malignancy, device="cpu")
    out = det.detect(ct)
    centres = np.array([c.center_irc for c in out.candidates])
    assert_allclose(out.p_malignant(), _direct_probability(malignancy, ct, centres), atol=1e-6)
    assert out.extra["shared_trunk_stages"] == 4


def test_lung_region_limits_the_segmentation():
    chest = small_chest()
    det = Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")
    out = det.detect(chest)
    (i0, r0, c0), (i1, r1, c1) = out.roi_irc
    assert out.segmented_slices == i1 - i0 < chest.shape[0]
    outside = out.seg_probability.copy()
    outside[i0:i1, r0:r1, c0:c1] = 0
    assert not outside.any()
    assert "segmenting" in out.messages[0]
    full = Detector(det.segmentation, det.classifier, det.malignancy, device="cpu",
                    config=DetectorConfig(lung_region=False)).detect(chest)
    assert full.segmented_slices == chest.shape[0]
    assert full.messages[0] == "lung-region search off: every slice was segmented in full"


def test_from_checkpoints_and_kind_errors(tmp_path, ct):
    seg, cls, mal = tiny_segmentation(0), tiny_classifier(1), tiny_classifier(2)
    save_checkpoint(tmp_path / "seg.pt", seg, "segmentation", model_args={"depth": 2, "wf": 2})
    save_checkpoint(tmp_path / "cls.pt", cls, "classifier", model_args={"conv_channels": 2})
    save_checkpoint(tmp_path / "mal.pt", mal, "malignancy", model_args={"conv_channels": 2})
    det = Detector.from_checkpoints(tmp_path / "seg.pt", tmp_path / "cls.pt", tmp_path / "mal.pt", device="cpu")
    assert det.model_ids["malignancy"].startswith("malignancy:")
    assert det.detect(ct).shape == ct.shape
    with pytest.raises(CheckpointKindError, match="segmentation model, but a classifier"):
        Detector.from_checkpoints(tmp_path / "seg.pt", tmp_path / "seg.pt", tmp_path / "mal.pt", device="cpu")


def test_default_without_demo_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(engine.paths, "MODELS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="missing checkpoint file") as info:
        Detector.default(device="cpu")
    text = str(info.value)
    assert f"the segmentation model {tmp_path / 'segmentation.pt'}" in text and "--seg/--cls/--mal" in text


def test_from_checkpoints_takes_the_demo_weights_for_roles_not_given(tmp_path, monkeypatch):
    demo, mine = tmp_path / "demo", tmp_path / "mine"
    demo.mkdir(), mine.mkdir()
    monkeypatch.setattr(engine.paths, "MODELS_DIR", demo)
    save_checkpoint(demo / "segmentation.pt", tiny_segmentation(0), "segmentation", model_args={"depth": 2, "wf": 2})
    save_checkpoint(demo / "classifier.pt", tiny_classifier(1), "classifier", model_args={"conv_channels": 2})
    save_checkpoint(demo / "malignancy.pt", tiny_classifier(2), "malignancy", model_args={"conv_channels": 2})
    save_checkpoint(mine / "cls.pt", tiny_classifier(3), "classifier", model_args={"conv_channels": 2})
    all_demo = Detector.from_checkpoints(device="cpu")
    assert all_demo.model_ids == Detector.default(device="cpu").model_ids
    one_given = Detector.from_checkpoints(classifier=mine / "cls.pt", device="cpu")
    assert one_given.model_ids["segmentation"] == all_demo.model_ids["segmentation"]
    assert one_given.model_ids["malignancy"] == all_demo.model_ids["malignancy"]
    assert one_given.model_ids["classifier"] != all_demo.model_ids["classifier"]
    # a missing file, given or demo: one message naming the role and the path
    (demo / "malignancy.pt").unlink()
    with pytest.raises(CheckpointError) as given_missing:
        Detector.from_checkpoints(segmentation=mine / "seg.pt", device="cpu")
    assert f"the segmentation model {mine / 'seg.pt'}; the malignancy model {demo / 'malignancy.pt'}" in str(
        given_missing.value
    )
    with pytest.raises(CheckpointError, match="missing checkpoint file: the malignancy model"):
        Detector.from_checkpoints(classifier=mine / "cls.pt", device="cpu")


def test_book_models_on_the_real_crop(book_dir):
    """The book's classifier through the Detector reproduces the reference probability."""
    from engine.io.volume import CtVolume
    from engine.geometry import Geometry

    crop, _label, uid, _center = torch.load(book_dir / "cls_val_example.pt", weights_only=True)
    ct = CtVolume(crop[0].numpy().astype(np.int16), Geometry(), uid)
    det = Detector.from_checkpoints(
        book_dir / "seg_book.best.state", book_dir / "cls_book.best.state", book_dir / "cls_book.best.state",
        device="cpu", config=DetectorConfig(lung_region=False),
    )
    p_nodule, p_malignant = det.classify_points(ct, np.array([[24.0, 24.0, 16.0]]))  # xyz of irc (16, 24, 24)
    assert p_nodule[0] == pytest.approx(5.055e-09, rel=2e-3)
    assert det.shared_depth == 5 and p_malignant[0] == p_nodule[0]
    result = det.detect(ct)
    assert result.shape == (32, 48, 48)
    assert all(0.0 <= c.p_nodule <= 1.0 for c in result.candidates)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_result(ct, result, detector):
    on_gpu = Detector(detector.segmentation, detector.classifier, detector.malignancy, device="cuda",
                      config=DetectorConfig(precision="float32"))
    out = on_gpu.detect(ct)
    assert out.device.startswith("cuda")
    assert_allclose(np.array([c.center_irc for c in out.candidates]), np.array([c.center_irc for c in result.candidates]))
    assert_allclose(out.p_nodule(), result.p_nodule(), atol=1e-4)
    mixed = Detector(detector.segmentation, detector.classifier, detector.malignancy, device="cuda").detect(ct)
    assert mixed.precision == "float16" and len(mixed.candidates) == len(result.candidates)


def test_compile_keeps_the_result(ct, result):
    detector = Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")
    detector.compile(backend="eager")  # traces with dynamo, runs eagerly: the wiring, not inductor
    again = detector.detect(ct)
    assert_array_equal(again.seg_probability, result.seg_probability)
    assert again.candidates == result.candidates
