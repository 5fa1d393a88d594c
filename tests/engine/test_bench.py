"""The benchmark's measuring core and model choice (the full 512×512×300 run is a command, not a test)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from engine.commands import bench
from engine.detection import Detector
from engine.detection.benchmark import STAGES, PeakMemory, benchmark_detector, machine_info, resident_bytes
from engine.detection.classify import shared_trunk_depth
from engine.models import NoduleClassifier
from tests.engine.fake_chest import DenseTissueSegmentation, lung_block, tiny_classifier


def test_benchmark_detector_reports_every_stage():
    ct = lung_block(shape=(10, 40, 40), nodules=(((5, 20, 20), 3.0),))
    loads = []

    def load():
        loads.append(1)
        return ct

    detector = Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")
    report = benchmark_detector(detector, load, runs=2, warmup=1, weights="tiny", series="lung block")
    assert len(loads) == 1 + 3, "one load before, then one per run"
    assert set(report.medians_s) == set(STAGES) and len(report.runs_s) == 2
    assert set(report.cpu_medians_s) == set(STAGES) - {"load"}
    assert report.cpu_medians_s["total"] > 0
    assert report.medians_s["total"] >= report.medians_s["segmentation"]
    assert report.candidates == 1 and report.shape == (10, 40, 40)
    assert report.peak_rss_mb >= report.baseline_rss_mb > 0 and report.peak_gpu_mb is None
    assert report.device == "cpu" and report.machine["torch"] == torch.__version__
    assert 0 < report.segmented_fraction <= 1
    text = report.table()
    assert "segmentation" in text and "weights: tiny" in text and "candidates: 1" in text
    json.dumps(report.as_dict())


def test_peak_memory_sees_a_temporary_allocation():
    import time

    with PeakMemory(interval=0.001) as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        during = resident_bytes()
        time.sleep(0.1)  # let the sampler see it
        del block
    assert memory.peak >= during > 0
    assert machine_info(torch.device("cpu"))["cpu_count"] >= 1


def test_malignancy_stand_in_shares_the_frozen_trunk():
    classifier = NoduleClassifier()
    stand_in = bench.finetune_like(classifier)
    assert shared_trunk_depth(classifier, stand_in) == 4
    assert not torch.equal(stand_in.head_linear.weight, classifier.head_linear.weight)


def test_bench_models_without_any_weights(monkeypatch, tmp_path):
    from engine import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    args = argparse.Namespace(seg=None, cls=None, mal=None)
    seg, cls, mal, description = bench.bench_models(args)
    assert "freshly initialised" in description
    assert shared_trunk_depth(cls, mal) == 4


def test_bench_models_prefers_book_weights(book_dir, monkeypatch, tmp_path):
    from engine import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    seg, cls, mal, description = bench.bench_models(argparse.Namespace(seg=None, cls=None, mal=None))
    assert "book weights" in description and str(seg).endswith("seg_book.best.state")


def test_book_comparison_and_side_by_side_on_a_small_volume():
    from engine.detection.benchmark import side_by_side
    from engine.detection.book_compare import OUR_STAGES, compare_with_book, run_book_style

    ct = lung_block(shape=(12, 48, 48), nodules=(((6, 24, 24), 3.0),))
    detector = Detector(DenseTissueSegmentation(), tiny_classifier(1), tiny_classifier(2), device="cpu")
    report = benchmark_detector(detector, lambda: ct, runs=1, warmup=0)
    book = run_book_style(ct, (detector.segmentation, detector.classifier, detector.malignancy), detector.device, 0.5)
    comparison = compare_with_book(
        book, report.medians_s, report.cpu_medians_s, report.candidates, report.nodules, report.backends
    )
    assert set(comparison.book_s) == set(comparison.ratio) == set(OUR_STAGES)
    assert comparison.book_s["total"] >= comparison.book_s["segmentation"] > 0
    expected = report.medians_s["lung_search"] + report.medians_s["segmentation"]
    assert comparison.ours_s["segmentation"] == expected
    assert comparison.ratio["total"] == comparison.book_s["total"] / comparison.ours_s["total"]
    assert comparison.book_candidates == comparison.our_candidates == 1
    assert comparison.ours_backend == {"segmentation": "torch", "classification": "torch"}
    assert "book-style pipeline vs ours" in comparison.table()
    json.dumps(comparison.as_dict())
    text = side_by_side({"torch": report, "again": report})
    assert "segmentation" in text and "1.00×" in text and "candidates: torch 1" in text
    # the book-style run used copies: our detector's placement (channels-last) is untouched
    assert detector.classifier.block1.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_bench_options():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--backend", "both", "--compare-book"])
    assert args.backend == "both" and args.compare_book
    assert parser.parse_args([]).backend == "torch"
