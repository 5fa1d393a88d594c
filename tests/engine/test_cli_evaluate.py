"""``python main.py evaluate``: arguments, printed report, written files (fake detector)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import main
from engine.checkpoints import save_checkpoint
from engine.commands import evaluate as evaluate_command
from engine.detection.settings import DetectorConfig, GroupingSettings
from engine.evaluation.cache import series_path
from engine.models import NoduleClassifier, SegmentationModel
from tests.engine.test_evaluation import FakeDetector, classify_at, write_dataset


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> FakeDetector:
    detector = FakeDetector()
    monkeypatch.setattr(evaluate_command, "build_detector", lambda args: (detector, "fake", classify_at))
    return detector


def test_evaluate_prints_the_report_and_writes_files(tmp_path: Path, capsys, fake_detector: FakeDetector) -> None:
    data = write_dataset(tmp_path / "luna")
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", str(data), "--split", "all", "--out", str(out), "--bootstrap", "20", "--per-series"]
    assert main.main(argv) == 0
    text = capsys.readouterr().out
    assert "Total" in text and "Pred. Malignant" in text and "1.3.6.1.2  (2 candidates)" in text
    assert "CPM        0.714" in text
    for name in ("submission.csv", "report.json", "froc.png", "roc.png"):
        assert (out / name).is_file()
    assert json.loads((out / "report.json").read_text())["n_series"] == 3
    assert len(fake_detector.calls) == 3
    # a rerun resumes from the cache, and may change thresholds
    assert main.main(argv + ["--nodule-threshold", "0.95"]) == 0
    assert len(fake_detector.calls) == 3
    assert "(3 from the cache)" in capsys.readouterr().out


def test_default_output_folder_is_under_the_user_runs(tmp_path: Path) -> None:
    out = evaluate_command.default_out_dir(tmp_path / "luna16", "val")
    assert out.name == "evaluate-luna16-val" and out.parent.name == "runs"


def _sha16(identity: dict) -> str:
    """The fingerprint :func:`detector_fingerprint` makes of ``identity`` (sorted-key JSON, SHA-256, 16 hex digits)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


IDS = {"segmentation": "segmentation-aa", "classifier": "classifier-bb", "malignancy": "malignancy-cc"}


def test_fingerprint_follows_models_and_grouping_settings() -> None:
    config = DetectorConfig()
    ids = IDS
    base = evaluate_command.detector_fingerprint(ids, config)
    assert base == evaluate_command.detector_fingerprint(dict(reversed(list(ids.items()))), config)
    assert base != evaluate_command.detector_fingerprint({**ids, "malignancy": "malignancy-dd"}, config)
    lower = DetectorConfig(grouping=GroupingSettings(seg_threshold=0.4))
    assert base != evaluate_command.detector_fingerprint(ids, lower)
    assert base != evaluate_command.detector_fingerprint(ids, DetectorConfig(lung_region=False))
    assert base != evaluate_command.detector_fingerprint(ids, DetectorConfig(grouping=GroupingSettings(erosion="in-plane")))
    assert base != evaluate_command.detector_fingerprint(ids, DetectorConfig(grouping=GroupingSettings(merge_mm=7)))
    # every fingerprint names the threshold, the method and every setting the method uses (a changed default
    # changes it): as_dict
    before = {"models": dict(sorted(ids.items())), "seg_threshold": 0.5, "lung_region": True}
    peaks_fields = {"merge_mm": 5.0, "smooth_mm": 2.0, "min_diameter_mm": 2.0}
    assert base == _sha16({**before, "method": "peaks", **peaks_fields})
    assert evaluate_command.detector_fingerprint(ids, lower) == _sha16(
        {**before, "seg_threshold": 0.4, "method": "peaks", **peaks_fields})
    # the smoothing's old default (1 mm) is another fingerprint than today's (2 mm)
    assert base != evaluate_command.detector_fingerprint(ids, DetectorConfig(grouping=GroupingSettings(smooth_mm=1.0)))
    book_in_plane = DetectorConfig(grouping=GroupingSettings(erosion="in-plane", method="components"))
    assert evaluate_command.detector_fingerprint(ids, book_in_plane) == _sha16(
        {**before, "erosion": "in-plane", "method": "components"}
    )
    # caches made before the method was named (components, then the default) are not taken for either method
    for method in ("peaks", "components"):
        grouped = DetectorConfig(grouping=GroupingSettings(method=method))
        assert evaluate_command.detector_fingerprint(ids, grouped) != _sha16(before)


def test_fingerprint_tells_the_methods_apart() -> None:
    """Same models, threshold and lung region: a peaks cache is never read back as a components one, nor the reverse."""
    peaks = DetectorConfig(grouping=GroupingSettings(method="peaks"))
    components = DetectorConfig(grouping=GroupingSettings(method="components"))
    assert peaks.grouping.non_defaults() == {}  # the default: only the always-named method tells it apart
    fingerprint = evaluate_command.detector_fingerprint
    assert fingerprint(IDS, peaks) == fingerprint(IDS, DetectorConfig())
    assert fingerprint(IDS, peaks) != fingerprint(IDS, components)
    # also with other settings shared, including a peaks-only one that components ignores
    for changes in ({"seg_threshold": 0.3}, {"erosion": "none"}, {"merge_mm": 8.0}):
        assert fingerprint(IDS, DetectorConfig(grouping=GroupingSettings(method="peaks", **changes))) != fingerprint(
            IDS, DetectorConfig(grouping=GroupingSettings(method="components", **changes))
        )


def _checkpoints(folder: Path) -> dict[str, Path]:
    """Untrained tiny models; the segmentation says "yes" everywhere so grouping finds a candidate."""
    seg_args = {"in_channels": 7, "n_classes": 1, "depth": 2, "wf": 2}
    seg = SegmentationModel(**seg_args)
    with torch.no_grad():
        for p in seg.parameters():
            p.zero_()
        seg.unet.last.bias.fill_(10.0)
    paths = {name: folder / f"{name}.pt" for name in ("seg", "cls", "mal")}
    save_checkpoint(paths["seg"], seg, "segmentation", model_args=seg_args)
    torch.manual_seed(0)
    save_checkpoint(paths["cls"], NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})
    save_checkpoint(paths["mal"], NoduleClassifier(conv_channels=2), "malignancy", model_args={"conv_channels": 2})
    return paths


def test_evaluate_with_the_real_detector(tmp_path: Path, capsys) -> None:
    data = write_dataset(tmp_path / "luna")
    ckpt = _checkpoints(tmp_path)
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", str(data), "--split", "all", "--out", str(out), "--bootstrap", "0",
            "--device", "cpu", "--seg", str(ckpt["seg"]), "--cls", str(ckpt["cls"]), "--mal", str(ckpt["mal"])]
    assert main.main(argv) == 0
    assert "LUNA16 FROC" in capsys.readouterr().out
    record = json.loads(series_path(out, "1.3.6.1.1").read_text())
    assert record["annotations_classified"] and len(record["annotation_p_malignant"]) == 2
    assert len(record["candidates"]["p_nodule"]) >= 1
    rows = (out / "submission.csv").read_text().splitlines()
    assert rows[0] == "seriesuid,coordX,coordY,coordZ,probability" and len(rows) >= 4
    # same models → resumed; another classifier → recomputed
    assert main.main(argv) == 0
    assert "(3 from the cache)" in capsys.readouterr().out
    save_checkpoint(ckpt["cls"], NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})
    assert main.main(argv) == 0
    assert "(0 from the cache)" in capsys.readouterr().out
    # same models, the other grouping method → recomputed (the method is in the fingerprint)
    assert main.main(argv + ["--method", "components"]) == 0
    assert "(0 from the cache)" in capsys.readouterr().out


def test_partial_checkpoints_need_the_demo_weights(tmp_path: Path, capsys, monkeypatch) -> None:
    import engine.paths

    data = write_dataset(tmp_path / "luna")
    ckpt = _checkpoints(tmp_path)
    monkeypatch.setattr(engine.paths, "MODELS_DIR", tmp_path / "nowhere")
    assert main.main(["evaluate", "--data", str(data), "--seg", str(ckpt["seg"]), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"the classifier model {tmp_path / 'nowhere' / 'classifier.pt'}" in err and "--cls/--mal" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--nodule-threshold", "1.5"], "not a probability"),
        (["--val-stride", "0"], "below the minimum 1"),
        (["--max-series", "x"], "invalid integer value"),
        (["--split", "nope"], "invalid choice"),
    ],
)
def test_bad_arguments_are_refused(extra: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main.main(["evaluate", "--data", "somewhere"] + extra)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_missing_dataset_is_an_engine_error(tmp_path: Path, capsys, fake_detector: FakeDetector) -> None:
    assert main.main(["evaluate", "--data", str(tmp_path / "nothing")]) == 2
    assert "nothing: is not a folder" in capsys.readouterr().err
