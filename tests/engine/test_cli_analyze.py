"""``python main.py analyze`` on MetaImage, NIfTI and DICOM input, with tiny checkpoints."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

import main
from engine.detection.settings import EROSIONS, METHODS, GroupingSettings
from engine.checkpoints import save_checkpoint
from tests.dicom_writer import write_dicom_series
from tests.engine.fake_chest import lung_block, tiny_classifier, tiny_segmentation


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder / "seg.pt", tiny_segmentation(0), "segmentation", model_args={"depth": 2, "wf": 2})
    save_checkpoint(folder / "cls.pt", tiny_classifier(1), "classifier", model_args={"conv_channels": 2})
    save_checkpoint(folder / "mal.pt", tiny_classifier(2), "malignancy", model_args={"conv_channels": 2})
    return folder


def _write_image(ct, path):
    image = sitk.GetImageFromArray(ct.hu)
    image.SetSpacing(ct.geometry.spacing_xyz)
    image.SetOrigin(ct.geometry.origin_xyz)
    sitk.WriteImage(image, str(path))


def _analyze(path, checkpoints, tmp_path, capsys, *extra):
    argv = ["analyze", str(path), "--seg", str(checkpoints / "seg.pt"), "--cls", str(checkpoints / "cls.pt"),
            "--mal", str(checkpoints / "mal.pt"), "--device", "cpu", "--csv", str(tmp_path / "out.csv"),
            "--json", str(tmp_path / "out.json"), "--nodule-threshold", "0", *extra]
    assert main.main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".mhd", ".nii.gz"])
def test_analyze_volume_files(suffix, checkpoints, tmp_path, capsys):
    ct = lung_block(shape=(12, 40, 40), nodules=(((6, 20, 20), 3.0),))
    path = tmp_path / f"scan{suffix}"
    _write_image(ct, path)
    out = _analyze(path, checkpoints, tmp_path, capsys)
    payload = json.loads((tmp_path / "out.json").read_text())
    assert payload["coordinate_system"] == "LPS" and "not for clinical use" in payload["note"]
    assert payload["shape_irc"] == [12, 40, 40]
    assert set(payload["model_ids"]) == {"segmentation", "classifier", "malignancy"}
    n = payload["n_candidates"]
    assert f"{n} candidates, {n} with p_nodule >= 0" in out
    assert "not for clinical use" in out
    rows = list(csv.reader((tmp_path / "out.csv").open()))
    assert rows[0] == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    assert len(rows) == n + 1
    for entry in payload["candidates"]:
        assert len(entry["center_irc"]) == 3 and len(entry["center_xyz_mm"]) == 3
        assert 0.0 <= entry["p_nodule"] <= 1.0 and 0.0 <= entry["p_malignant"] <= 1.0
    if n:
        probabilities = [float(r[4]) for r in rows[1:]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert f"{payload['candidates'][0]['p_nodule']:8.3f}".strip() in out


def test_analyze_dicom_folder(checkpoints, tmp_path, capsys):
    ct = lung_block(shape=(10, 32, 36), nodules=(((5, 16, 18), 3.0),))
    folder = tmp_path / "dicom"
    write_dicom_series(folder, ct.hu, spacing_xyz=(0.8, 0.8, 1.5))
    out = _analyze(folder, checkpoints, tmp_path, capsys, "--all-slices")
    payload = json.loads((tmp_path / "out.json").read_text())
    assert payload["series_uid"] == "1.2.826.0.1.3680043.2.1125.7.1"
    assert payload["shape_irc"] == [10, 32, 36]
    assert "time (s):" in out and "models: segmentation segmentation:" in out


def test_analyze_without_weights_explains(tmp_path, capsys, monkeypatch):
    import engine.paths

    monkeypatch.setattr(engine.paths, "MODELS_DIR", tmp_path)
    ct = lung_block(shape=(6, 16, 16), nodules=())
    path = tmp_path / "scan.mhd"
    _write_image(ct, path)
    assert main.main(["analyze", str(path), "--device", "cpu"]) == 2
    assert f"missing checkpoint file: the segmentation model {tmp_path / 'segmentation.pt'}" in capsys.readouterr().err


def test_erosion_option_reaches_the_detector(checkpoints):
    import argparse

    from engine.commands import analyze as analyze_command
    from engine.commands import evaluate as evaluate_command

    def parse(module, argv):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        return parser.parse_args(argv)

    models = ["--seg", str(checkpoints / "seg.pt"), "--cls", str(checkpoints / "cls.pt"),
              "--mal", str(checkpoints / "mal.pt"), "--device", "cpu"]
    args = parse(analyze_command, ["scan.mhd", *models, "--erosion", "in-plane", "--seg-threshold", "0.3"])
    assert analyze_command.detector_from_args(args).config.grouping == GroupingSettings(0.3, "in-plane")
    spec, spec_id, _ = evaluate_command.build_detector(parse(evaluate_command, ["--data", "d", *models]))
    assert spec.config.grouping == GroupingSettings()
    other, other_id, _ = evaluate_command.build_detector(parse(evaluate_command, ["--data", "d", *models, "--erosion", "none"]))
    assert other.config.grouping.erosion == "none" and other_id != spec_id
    with pytest.raises(SystemExit):
        parse(analyze_command, ["scan.mhd", "--erosion", "2d"])


def test_backend_option_reaches_the_detector(checkpoints):
    import argparse

    from engine.commands import analyze as analyze_command
    from engine.commands import evaluate as evaluate_command

    models = ["--seg", str(checkpoints / "seg.pt"), "--cls", str(checkpoints / "cls.pt"),
              "--mal", str(checkpoints / "mal.pt"), "--device", "cpu"]
    for module, first in ((analyze_command, ["scan.mhd"]), (evaluate_command, ["--data", "d"])):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert parser.parse_args([*first, *models]).backend == "torch"
        args = parser.parse_args([*first, *models, "--backend", "auto"])
        build = analyze_command.detector_from_args if module is analyze_command else evaluate_command.build_detector
        built = build(args)
        detector = built[0] if isinstance(built, tuple) else built
        assert detector.config.backend == "auto"
        assert detector.backends == {"segmentation": "onnx", "classification": "torch"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "tensorrt"], "invalid choice: 'tensorrt'"),
        (["--erosion", "2d"], "unknown erosion '2d'"),
        (["--seg-threshold", "1.5"], "must lie in [0, 1]"),
        (["--seg-threshold", "x"], "could not convert"),
        (["--device", "gpu"], "unknown device 'gpu'"),
    ],
)
def test_bad_grouping_and_device_options_are_refused_with_the_engines_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main.main(["analyze", "scan.mhd", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_grouping_options_follow_the_settings_fields():
    import argparse
    import dataclasses

    from engine.commands.options import add_grouping_arguments, grouping_from_args

    parser = argparse.ArgumentParser()
    add_grouping_arguments(parser)
    options = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert set(options) == {f.name for f in dataclasses.fields(GroupingSettings)}
    assert options["erosion"].choices == EROSIONS and options["erosion"].option_strings == ["--erosion"]
    assert options["seg_threshold"].option_strings == ["--seg-threshold"]
    assert options["method"].choices == METHODS and options["method"].option_strings == ["--method"]
    assert grouping_from_args(parser.parse_args([])) == GroupingSettings()
    assert grouping_from_args(parser.parse_args([])).method == "peaks"
    assert grouping_from_args(parser.parse_args(["--erosion", "none"])) == GroupingSettings(erosion="none")
    assert grouping_from_args(parser.parse_args([])).describe() == (
        "threshold 0.50, method peaks, merge mm 5.00, smoothing mm 2.00, min diameter mm 2.00"
    )
    book = grouping_from_args(parser.parse_args(["--method", "components"]))
    assert book == GroupingSettings(method="components")
    assert book.describe() == "threshold 0.50, erosion 3d, method components"


def test_device_option_takes_the_engines_names_and_cuda_indices():
    from engine.choices import DEVICE_CHOICES
    from engine.commands.options import device_name

    assert [device_name(name) for name in DEVICE_CHOICES] == list(DEVICE_CHOICES)
    assert device_name("cuda:1") == "cuda:1" and device_name(" CPU ") == "cpu"
