"""``engine.evaluation.dataset``: evaluate end to end on a tiny LUNA16-format folder with a fake detector."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from engine.errors import CancelledError, DatasetError
from engine.evaluation.dataset import EvaluationSettings, evaluate_dataset, matched_malignancy
from engine.evaluation.cache import series_path
from engine.evaluation.report import format_report, write_outputs
from engine.luna import LunaIndex

UID_A, UID_B, UID_C = "1.3.6.1.1", "1.3.6.1.2", "1.3.6.1.3"

# (uid, x, y, z, diameter, malignant)
NODULES = [
    (UID_A, 10.0, 10.0, 5.0, 6.0, True),  # N1
    (UID_A, 30.0, 30.0, 10.0, 8.0, False),  # N2
    (UID_B, 20.0, 20.0, 10.0, 10.0, True),  # N3
]
EXCLUDED = [(UID_A, 30.0, 10.0, 15.0, -1.0)]
# (x, y, z, p_nodule, p_malignant)
CANDIDATES = {
    UID_A: [
        (10.0, 11.0, 5.0, 0.9, 0.8),  # N1 → Malignant / Pred. Malignant; FROC TP 0.9
        (31.0, 30.0, 10.0, 0.4, 0.1),  # N2 → Benign / Filtered Out; FROC TP 0.4
        (30.0, 10.0, 15.0, 0.7, 0.2),  # excluded finding → ignored by FROC; book: non-nodule, Pred. Benign
        (5.0, 35.0, 3.0, 0.6, 0.6),  # FP 0.6; non-nodule, Pred. Malignant
    ],
    UID_B: [
        (20.0, 20.0, 12.0, 0.3, 0.9),  # N3 → Malignant / Filtered Out; FROC TP 0.3
        (35.0, 5.0, 5.0, 0.8, 0.3),  # FP 0.8; non-nodule, Pred. Benign
    ],
    UID_C: [(5.0, 5.0, 5.0, 0.2, 0.5)],  # FP 0.2; non-nodule, Filtered Out
}
# what a crop classified at each annotation centre says (keyed by x)
AT_ANNOTATION = {10.0: 0.7, 30.0: 0.2, 20.0: 0.1}


def write_dataset(root: Path) -> Path:
    sub = root / "subset0"
    sub.mkdir(parents=True)
    for uid in CANDIDATES:
        image = sitk.GetImageFromArray(np.full((20, 40, 40), -1000, np.int16))
        sitk.WriteImage(image, str(sub / f"{uid}.mhd"))
    with (root / "annotations_with_malignancy.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "mal_bool"])
        for uid, x, y, z, d, mal in NODULES:
            w.writerow([uid, x, y, z, d, mal])
    with (root / "annotations_excluded.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        w.writerows(EXCLUDED)
    return root


class FakeDetector:
    """Returns the fixed candidates of each series; counts its calls."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def detect(self, ct, progress=None, cancelled=None):
        assert callable(progress) and (cancelled is None or callable(cancelled))
        if ct.series_uid == self.fail_on:
            raise RuntimeError("detector crashed")
        self.calls.append(ct.series_uid)
        progress(0.5, "segmenting")
        cands = [
            SimpleNamespace(center_xyz=(x, y, z), center_irc=(z, y, x), p_nodule=pn, p_malignant=pm,
                            diameter_mm=4.0, voxel_count=33)
            for x, y, z, pn, pm in CANDIDATES[ct.series_uid]
        ]
        return SimpleNamespace(series_uid=ct.series_uid, candidates=cands)


def classify_at(ct, xyz: np.ndarray) -> np.ndarray:
    return np.array([AT_ANNOTATION[float(p[0])] for p in xyz])


ALL = EvaluationSettings(split="all", bootstrap_samples=50)


@pytest.fixture
def dataset(tmp_path: Path) -> LunaIndex:
    return LunaIndex.open(write_dataset(tmp_path / "luna"))


def test_end_to_end_numbers(dataset: LunaIndex, tmp_path: Path) -> None:
    seen: list[float] = []
    result = evaluate_dataset(
        dataset, FakeDetector(), tmp_path / "out", ALL, detector_id="fake", classify_at=classify_at,
        progress=lambda f, text: seen.append(f),
    )
    assert result.confusion.counts == ((0, 1, 2, 1), (0, 1, 0, 0), (0, 1, 0, 1))
    assert [o.series_uid for o in result.series] == [UID_A, UID_B, UID_C]
    # FROC: TPs 0.9, 0.4, 0.3; FPs 0.8, 0.6, 0.2 over 3 scans → sensitivity 1/3 up to 2/3 FP/scan, then 1
    froc = result.froc
    assert (froc.n_scans, froc.n_nodules, froc.n_detected, froc.n_false_positives, froc.n_ignored) == (3, 3, 3, 3, 1)
    assert froc.sensitivities == pytest.approx((1 / 3, 1 / 3, 1 / 3, 1, 1, 1, 1))
    assert froc.cpm == pytest.approx(5 / 7)
    assert froc.cpm_interval is not None
    # malignancy at the annotations: malignant 0.7 and 0.1 vs benign 0.2 → 0.5; diameters 6, 10 vs 8 → 0.5
    mal = result.malignancy
    assert mal.source == "annotation" and mal.n_labelled == 3 and mal.n_scored == 3
    assert mal.model.auc == pytest.approx(0.5) and mal.baseline.auc == pytest.approx(0.5)
    assert seen and seen[-1] == pytest.approx(1.0) and all(0.0 <= f <= 1.0 for f in seen)
    assert np.all(np.diff(seen) >= -1e-12)


def test_malignancy_from_matched_detections(dataset: LunaIndex, tmp_path: Path) -> None:
    settings = EvaluationSettings(split="all", bootstrap_samples=0, malignancy_at="match")
    result = evaluate_dataset(dataset, FakeDetector(), tmp_path / "out", settings, classify_at=classify_at)
    # matched p_malignant: N1 0.8, N3 0.9 (malignant) vs N2 0.1 → perfect
    assert result.malignancy.source == "match" and result.malignancy.model.auc == 1.0
    # without classify_at the annotation mode falls back to matching, and says so
    fallback = evaluate_dataset(dataset, FakeDetector(), tmp_path / "out2", EvaluationSettings(split="all", bootstrap_samples=0))
    assert fallback.malignancy.source == "match" and any("matched detections" in n for n in fallback.notes)


def test_matched_malignancy_takes_the_most_nodule_like_match() -> None:
    score = matched_malignancy(
        np.array([[0.0, 0, 0], [50, 0, 0]]), np.array([10.0, 4.0]),
        np.array([[1.0, 0, 0], [0, 1, 0], [90, 0, 0]]), np.array([0.4, 0.9, 0.99]), np.array([0.1, 0.6, 0.3]),
    )
    assert score[0] == 0.6 and np.isnan(score[1])


def test_submission_csv_is_the_luna16_format(dataset: LunaIndex, tmp_path: Path) -> None:
    result = evaluate_dataset(dataset, FakeDetector(), tmp_path / "out", ALL, classify_at=classify_at)
    text = result.submission_csv.read_text()
    lines = text.splitlines()
    assert lines[0] == "seriesuid,coordX,coordY,coordZ,probability"
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == sum(len(v) for v in CANDIDATES.values())
    got = {(r["seriesuid"], float(r["coordX"]), float(r["coordY"]), float(r["coordZ"]), float(r["probability"])) for r in rows}
    want = {(uid, x, y, z, pn) for uid, c in CANDIDATES.items() for x, y, z, pn, _ in c}
    assert got == want
    assert not list(result.out_dir.glob(".*.tmp"))


def test_submission_keeps_at_most_max_marks_per_scan(dataset: LunaIndex, tmp_path: Path) -> None:
    settings = EvaluationSettings(split="all", bootstrap_samples=0, max_marks=1)
    result = evaluate_dataset(dataset, FakeDetector(), tmp_path / "out", settings, classify_at=classify_at)
    rows = list(csv.DictReader(result.submission_csv.read_text().splitlines()))
    assert [(r["seriesuid"], float(r["probability"])) for r in rows] == [(UID_A, 0.9), (UID_B, 0.8), (UID_C, 0.2)]
    assert result.froc.n_dropped == 4


def test_rerun_resumes_from_the_cache(dataset: LunaIndex, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = evaluate_dataset(dataset, FakeDetector(), out, ALL, detector_id="m1", classify_at=classify_at)
    again = FakeDetector()
    second = evaluate_dataset(dataset, again, out, ALL, detector_id="m1", classify_at=classify_at)
    assert again.calls == [] and second.n_cached == 3
    assert second.confusion == first.confusion and second.froc.cpm == first.froc.cpm
    assert second.malignancy.model.auc == first.malignancy.model.auc
    # other thresholds rescore from the cache too
    strict = EvaluationSettings(split="all", bootstrap_samples=0, nodule_threshold=0.95)
    assert evaluate_dataset(dataset, again, out, strict, detector_id="m1", classify_at=classify_at).confusion.nodules_detected == 0
    assert again.calls == []
    # a missing file is recomputed; other models recompute everything
    series_path(out, UID_B).unlink()
    evaluate_dataset(dataset, again, out, ALL, detector_id="m1", classify_at=classify_at)
    assert again.calls == [UID_B]
    other = FakeDetector()
    result = evaluate_dataset(dataset, other, out, ALL, detector_id="m2", classify_at=classify_at)
    assert other.calls == [UID_A, UID_B, UID_C] and result.n_cached == 0
    assert any("other models" in n for n in result.notes)


def test_a_crash_keeps_the_finished_series(dataset: LunaIndex, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="crashed"):
        evaluate_dataset(dataset, FakeDetector(fail_on=UID_B), out, ALL, classify_at=classify_at)
    assert series_path(out, UID_A).exists() and not series_path(out, UID_B).exists()
    assert not (out / "submission.csv").exists() and not list(out.rglob("*.tmp"))
    resumed = FakeDetector()
    evaluate_dataset(dataset, resumed, out, ALL, classify_at=classify_at)
    assert resumed.calls == [UID_B, UID_C]


def test_a_corrupt_cache_file_is_recomputed(dataset: LunaIndex, tmp_path: Path) -> None:
    out = tmp_path / "out"
    evaluate_dataset(dataset, FakeDetector(), out, ALL, classify_at=classify_at)
    series_path(out, UID_C).write_text("{not json")
    again = FakeDetector()
    result = evaluate_dataset(dataset, again, out, ALL, classify_at=classify_at)
    assert again.calls == [UID_C] and any("unreadable" in n for n in result.notes)


def test_cancel_between_series(dataset: LunaIndex, tmp_path: Path) -> None:
    with pytest.raises(CancelledError):
        evaluate_dataset(dataset, FakeDetector(), tmp_path / "out", ALL, cancelled=lambda: True)


def test_split_selection(dataset: LunaIndex, tmp_path: Path) -> None:
    # stride 2 over the sorted uids: A and C are validation, B training
    val = evaluate_dataset(dataset, FakeDetector(), tmp_path / "v", EvaluationSettings(val_stride=2, bootstrap_samples=0))
    assert [o.series_uid for o in val.series] == [UID_A, UID_C]
    first = evaluate_dataset(dataset, FakeDetector(), tmp_path / "m", EvaluationSettings(split="all", max_series=1, bootstrap_samples=0))
    assert [o.series_uid for o in first.series] == [UID_A]
    with pytest.raises(DatasetError, match="'test' split is empty"):
        evaluate_dataset(dataset, FakeDetector(), tmp_path / "t", EvaluationSettings(split="test"))


def test_outputs_and_report(dataset: LunaIndex, tmp_path: Path) -> None:
    result = evaluate_dataset(dataset, FakeDetector(), tmp_path / "out", ALL, classify_at=classify_at)
    files = write_outputs(result)
    for key in ("froc_plot", "roc_plot"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(files["report"].read_text())
    assert report["froc"]["cpm"] == pytest.approx(5 / 7)
    assert report["confusion"]["total"]["Malignant"] == {
        "Complete Miss": 0, "Filtered Out": 1, "Pred. Benign": 0, "Pred. Malignant": 1,
    }
    assert report["malignancy"]["model"]["auc"] == pytest.approx(0.5)
    assert len(report["series"]) == 3 and report["files"]["submission"].endswith("submission.csv")
    text = format_report(result, per_series=True)
    assert "Complete Miss |     Filtered Out |     Pred. Benign |  Pred. Malignant" in text
    assert f"{UID_B}  (2 candidates)" in text
    assert "2 of 3 nodules found" not in text and "1 of 3 nodules found (33.3%)" in text
    assert "CPM" in text and "0.714" in text
    assert "model AUC 0.500   diameter baseline AUC 0.500" in text


class NoMalignancyDetector(FakeDetector):
    """A detector run without a malignancy model: p_malignant is None."""

    def detect(self, ct, progress=None, cancelled=None):
        result = super().detect(ct, progress, cancelled)
        for c in result.candidates:
            c.p_malignant = None
        return result


def test_without_a_malignancy_model(dataset: LunaIndex, tmp_path: Path) -> None:
    settings = EvaluationSettings(split="all", bootstrap_samples=0, malignancy_at="match")
    result = evaluate_dataset(dataset, NoMalignancyDetector(), tmp_path / "out", settings)
    assert not result.has_malignancy_model
    # every nodule call is a Pred. Benign ("predicted nodule")
    assert result.confusion.counts == ((0, 1, 3, 0), (0, 1, 0, 0), (0, 1, 1, 0))
    assert result.malignancy.source == "none" and result.malignancy.model is None
    assert result.malignancy.baseline_all.auc == pytest.approx(0.5)
    text = format_report(result)
    assert "Pred. Nodule" in text and "Pred. Malignant" not in text
    assert "no malignancy probabilities" in text
    assert "interval" not in text  # no bootstrap asked for
    assert json.loads(write_outputs(result)["report"].read_text())["malignancy"]["model"] is None


def test_dataset_without_malignancy_labels(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "luna")
    labelled = (root / "annotations_with_malignancy.csv").read_text().splitlines()
    plain = [",".join(line.split(",")[:5]) for line in labelled]
    (root / "annotations.csv").write_text("\n".join(plain) + "\n")
    (root / "annotations_with_malignancy.csv").unlink()
    result = evaluate_dataset(
        LunaIndex.open(root), FakeDetector(), tmp_path / "out", ALL, classify_at=classify_at
    )
    # unknown labels go to the Benign row
    assert result.confusion.counts[1:] == ((0, 2, 0, 1), (0, 0, 0, 0))
    assert result.froc.cpm == pytest.approx(5 / 7)
    assert result.malignancy.source == "none" and "no malignancy labels" in result.malignancy.note
    assert result.malignancy.n_labelled == 0
    assert any("counted in the Benign row" in n for n in result.notes)
    write_outputs(result)  # plots and JSON cope with empty curves
