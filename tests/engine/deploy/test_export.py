"""Export of tiny models in every format: equivalence with eager, the manifest, atomic output, the ONNX wrappers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoints import load_checkpoint, weights_sha256
from engine.deploy import export as export_module
from engine.deploy.bundle import ExportRequest, export_models
from engine.deploy.errors import EquivalenceError, ExportError, ExportedModelError
from engine.deploy.manifest import file_sha256, read_manifest, verify_files
from engine.deploy.onnx_runtime import OnnxClassifier, OnnxSegmentation, load_onnx_model


@pytest.fixture(scope="module")
def exported(tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("export") / "models"
    lines: list[str] = []
    manifest = export_models(ExportRequest(out_dir=out, checkpoints=tiny_checkpoints), log=lines.append)
    assert any("max |Δp|" in line for line in lines)
    return out, manifest


def test_every_format_is_written_and_equivalent(exported) -> None:
    out, manifest = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{k}{s}" for k in ("segmentation", "classifier", "malignancy") for s in (".onnx", ".ts", ".pt2")]
        + ["manifest.json"]
    )
    for kind, model in manifest["models"].items():
        assert set(model["files"]) == {"onnx", "torchscript", "exported"}
        for entry in model["files"].values():
            check = entry["equivalence"]
            assert check["passed"] and 0.0 <= check["max_abs_dp"] <= 1e-4, (kind, entry)
            assert check["samples"] >= 5


def test_manifest_describes_inputs_sources_and_hashes(exported, tiny_checkpoints) -> None:
    out, manifest = exported
    on_disk = read_manifest(out)
    assert on_disk == json.loads(json.dumps(manifest))
    assert verify_files(out) == []
    seg = on_disk["models"]["segmentation"]
    assert seg["interface"]["inputs"][0]["shape"] == ["batch", 7, "height", "width"]
    assert seg["interface"]["inputs"][0]["dynamic_axes"] == {"0": "batch", "2": "height", "3": "width"}
    assert seg["interface"]["size_multiple"] == 2
    assert seg["interface"]["hu_clip"] == [-1000, 1000]
    cls = on_disk["models"]["classifier"]
    assert cls["interface"]["inputs"][0]["shape"] == ["batch", 1, 32, 48, 48]
    assert [o["name"] for o in cls["interface"]["outputs"]] == ["logits", "probabilities"]
    assert on_disk["opset"] == 18
    for kind, path in tiny_checkpoints.items():
        source = on_disk["models"][kind]["source"]
        assert source["file_sha256"] == file_sha256(path)
        assert source["weights_sha256"] == weights_sha256(load_checkpoint(path).model.state_dict())
        for entry in on_disk["models"][kind]["files"].values():
            assert entry["sha256"] == file_sha256(out / entry["file"])


def test_tampered_file_is_reported(exported, tmp_path: Path) -> None:
    out, _ = exported
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    with open(copy / "classifier.ts", "ab") as stream:
        stream.write(b"x")
    assert verify_files(copy) == ["classifier: classifier.ts does not match its sha256"]


def test_onnx_wrappers_match_eager_for_numpy_and_torch(exported, tiny_checkpoints) -> None:
    out, _ = exported
    rng = np.random.default_rng(3)
    classifier = load_onnx_model(out / "classifier.onnx", "classifier")
    assert isinstance(classifier, OnnxClassifier) and classifier.providers[0] == "CPUExecutionProvider"
    eager = load_checkpoint(tiny_checkpoints["classifier"]).model
    crops = rng.uniform(-1000, 1000, (5, 1, 32, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected_logits, expected_p = (t.numpy() for t in eager(torch.from_numpy(crops)))
    logits, probabilities = classifier(crops)
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities, expected_p, atol=1e-5)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-4, atol=1e-3)
    torch_logits, torch_p = classifier(torch.from_numpy(crops))
    assert isinstance(torch_p, torch.Tensor) and torch_p.dtype == torch.float32
    np.testing.assert_allclose(torch_p.numpy(), expected_p, atol=1e-5)
    np.testing.assert_allclose(classifier.positive_probability(crops), expected_p[:, 1], atol=1e-5)

    segmentation = load_onnx_model(out / "segmentation.onnx")
    assert isinstance(segmentation, OnnxSegmentation) and segmentation.size_multiple == 2
    seg_eager = load_checkpoint(tiny_checkpoints["segmentation"]).model
    slices = rng.uniform(-1000, 1000, (3, 7, 37, 50)).astype(np.float32)  # odd height: padded and cropped back
    with torch.no_grad():
        expected = seg_eager(torch.from_numpy(slices)).numpy()
    got = segmentation(slices)
    assert got.shape == (3, 1, 37, 50)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_wrong_kind_and_missing_file_are_refused(exported, tmp_path: Path) -> None:
    out, _ = exported
    with pytest.raises(ExportedModelError, match="holds a segmentation model"):
        load_onnx_model(out / "segmentation.onnx", "classifier")
    assert isinstance(load_onnx_model(out / "classifier.onnx", "malignancy"), OnnxClassifier)
    with pytest.raises(ExportedModelError, match="no such ONNX file"):
        load_onnx_model(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportedModelError):
        load_onnx_model(tmp_path / "junk.onnx")


def test_broken_export_fails_the_check_and_writes_nothing(tiny_checkpoints, tmp_path: Path, monkeypatch) -> None:
    real = export_module.export_torchscript

    def perturbed(model, spec, sample, path):
        broken = type(model)(**({"conv_channels": 2} if spec.kind != "segmentation" else {"depth": 2, "wf": 1}))
        broken.load_state_dict(model.state_dict())
        with torch.no_grad():
            head = broken.head_linear if spec.kind != "segmentation" else broken.unet.last
            head.bias[-1] += 2.0  # a wrong export: one class bias shifted
        real(broken.eval(), spec, sample, path)

    monkeypatch.setitem(export_module.EXPORTERS, "torchscript", perturbed)
    monkeypatch.setattr("engine.deploy.bundle.EXPORTERS", export_module.EXPORTERS)
    out = tmp_path / "out"
    request = ExportRequest(out_dir=out, checkpoints=tiny_checkpoints, formats=("torchscript",), kinds=("classifier",))
    with pytest.raises(EquivalenceError, match="torchscript export of the classifier model differs"):
        export_models(request, log=lambda line: None)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left either


def test_command_exits_non_zero_on_a_failed_check(tiny_checkpoints, tmp_path: Path, monkeypatch, capsys) -> None:
    import main

    def fail(*args, **kwargs):
        return export_module.Equivalence("onnx", 0.3, 4, ((4, 1, 32, 48, 48),), 1e-4)

    monkeypatch.setattr("engine.deploy.bundle.check_equivalence", fail)
    out = tmp_path / "out"
    status = main.main(["export", str(out), "--cls", str(tiny_checkpoints["classifier"]), "--seg",
                        str(tiny_checkpoints["segmentation"]), "--mal", str(tiny_checkpoints["malignancy"]),
                        "--format", "onnx"])
    assert status == 2
    assert "differs from the eager model" in capsys.readouterr().err
    assert not out.exists()


def test_destination_that_is_not_an_export_is_refused(tiny_checkpoints, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="holds no earlier export"):
        export_models(ExportRequest(out_dir=tmp_path, checkpoints=tiny_checkpoints), log=lambda line: None)
    with pytest.raises(ExportError, match="include onnx"):
        export_models(ExportRequest(out_dir=tmp_path / "x", formats=("torchscript",), quantize="int8"))


def test_backend_latency_rows(exported) -> None:
    from engine.deploy.bench import CASES, backend_latency, format_latency

    out, _ = exported
    rows = backend_latency(out, repeats=1)
    assert [(r["kind"], tuple(r["shape"])) for r in rows] == list(CASES)
    assert all(r["torch_ms"] > 0 and r["onnx_ms"] > 0 for r in rows)
    assert "torch/onnx" in format_latency(rows)


def test_int8_quantization_is_recorded_with_its_costs(exported, tmp_path: Path) -> None:
    from engine.deploy.quantize import quantize_classifiers

    out, manifest = exported
    (tmp_path / "classifier.onnx").write_bytes((out / "classifier.onnx").read_bytes())
    models = {"classifier": {"files": {"onnx": dict(manifest["models"]["classifier"]["files"]["onnx"])}}}
    quantize_classifiers(models, tmp_path, log=lambda line: None, calibration_seeds=(101,), held_out_seeds=(201,))
    report = models["classifier"]["int8"]
    assert report["sha256"] == file_sha256(tmp_path / "classifier.int8.onnx")
    assert report["bytes"] == (tmp_path / "classifier.int8.onnx").stat().st_size
    assert 0.0 <= report["decision_agreement"] <= 1.0
    assert report["held_out"]["seeds"] == [201] and report["calibration"]["seeds"] == [101]
    assert isinstance(report["recommended"], bool) and "int8 runs at" in report["verdict"]
    int8 = load_onnx_model(tmp_path / "classifier.int8.onnx", "classifier")
    assert int8.metadata["lungcad_precision"] == "int8"
    assert int8(np.zeros((2, 1, 32, 48, 48), np.float32) - 800)[1].shape == (2, 2)


def test_calibration_reader_rewinds_to_the_first_batch() -> None:
    import numpy as np

    from engine.deploy.quantize import _CropReader

    crops = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    reader = _CropReader("x", crops, batch=4)
    first = [reader.get_next()["x"].shape[0] for _ in range(3)]
    assert first == [4, 4, 2] and reader.get_next() is None
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["x"], crops[:4])


def test_a_size_head_goes_into_the_manifest_beside_the_cnn(exported, tiny_checkpoints, tmp_path: Path) -> None:
    from engine.checkpoints import save_checkpoint
    from engine.models.classifier import NoduleClassifier

    assert "size_head" not in exported[1]["models"]["malignancy"]  # a model without one says nothing
    source = load_checkpoint(tiny_checkpoints["malignancy"], "malignancy")
    args = {**dict(source.model_args), "size_head": True}
    model = NoduleClassifier(**args)
    model.load_state_dict(source.model.state_dict(), strict=False)
    with torch.no_grad():
        model.size_head.weight.copy_(torch.tensor([[0.5, 2.0]]))
        model.size_head.bias.fill_(-4.0)
    save_checkpoint(tmp_path / "mal.pt", model, "malignancy", model_args=args)
    request = ExportRequest(out_dir=tmp_path / "out", checkpoints={"malignancy": tmp_path / "mal.pt"},
                            formats=("onnx",), kinds=("malignancy",))
    manifest = export_models(request, log=lambda line: None)
    head = manifest["models"]["malignancy"]["size_head"]
    assert head["coefficients"] == pytest.approx([0.5, 2.0, -4.0])
    assert "sigmoid" in head["formula"] and "ln(diameter_mm)" in head["formula"]
    # the exported file is the CNN: the same probabilities as the model without its head
    onnx = load_onnx_model(tmp_path / "out" / "malignancy.onnx")
    crops = np.random.default_rng(0).uniform(-1000, 400, (3, 32, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = source.model(torch.from_numpy(crops).clamp(-1000, 1000).unsqueeze(1))[1][:, 1].numpy()
    np.testing.assert_allclose(onnx.positive_probability(np.clip(crops, -1000, 1000)[:, None]), expected, atol=1e-5)


def test_a_shape_head_goes_into_the_manifest_with_its_inputs() -> None:
    from engine.deploy.bundle import _shape_head
    from engine.lesion_shape import INPUT_NAMES
    from engine.models.classifier import NoduleClassifier

    assert _shape_head(NoduleClassifier()) == {}  # a model without one says nothing
    model = NoduleClassifier(shape_head=True)
    with torch.no_grad():
        model.shape_head.bias.fill_(-2.0)
    head = _shape_head(model)["shape_head"]
    assert head["inputs"] == list(INPUT_NAMES)
    assert head["coefficients"] == pytest.approx([1.0] + [0.0] * (len(INPUT_NAMES) - 1) + [-2.0])
    assert "sigmoid" in head["formula"] and "segmented region" in head["inputs_note"]
