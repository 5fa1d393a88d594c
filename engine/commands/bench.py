"""``python main.py bench``: time detection on the standard 512×512×300 phantom.

Generates the phantom (``engine.phantom.generate_series(seed, "standard",
n_slices=300)``), writes it as MetaImage to a temporary folder, and times
loading it and detecting on it: the median of ``--runs`` runs after a warm-up,
per stage. Models: the demo weights when shipped; else the book's real-data
weights when ``../shared/book`` is present; else freshly initialised models
(timings do not depend on the weights, the number of candidates does). The
report says which ran.

``--backend torch|onnx|auto`` times that runtime; ``--backend both`` times
torch and then ONNX Runtime on the same volume and prints them side by side
per stage. ``--compare-book`` also runs the book-style pipeline
(:mod:`engine.detection.book_style`) once with the same models on the same
volume and prints its stages beside ours with the ratios (book / ours) and
both candidate counts. ``--json`` writes ``{"reports": {backend: report},
"book_comparison": {backend: comparison} or null}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

from engine.commands.options import (
    add_backend_argument,
    add_grouping_arguments,
    add_model_arguments,
    grouping_from_args,
    model_paths_from_args,
)
from engine.detection.settings import BACKENDS
from engine.files import write_text_atomic

DESCRIPTION = "time detection (per stage) on the standard 512x512x300 phantom"
#: Slices of the standard benchmark volume.
BENCH_SLICES = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, default="the demo weights, else the book's weights, else untrained models", backend=False)
    add_backend_argument(parser, BACKENDS + ("both",))
    parser.add_argument("--compare-book", action="store_true",
                        help="also run the book-style pipeline once on the same volume and weights, per-stage ratios")
    parser.add_argument("--compile", default=None, choices=("default", "reduce-overhead", "max-autotune"),
                        help="torch.compile the torch segmentation model in this mode (reduce-overhead: CUDA graphs); "
                        "the warm-up run includes the compilation (off by default)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--slices", type=int, default=BENCH_SLICES,
                        help=f"slices of the phantom (default {BENCH_SLICES}, the standard benchmark volume)")
    parser.add_argument("--json", default=None, help="also write the report as JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cpu-streams", type=int, default=None,
                        help="CPU batches run at once, one worker thread each (default: one per thread; 1: one batch "
                        "at a time on all threads)")
    parser.add_argument("--all-slices", action="store_true", help="segment every slice in full (no lung region)")
    add_grouping_arguments(parser)


def bench_models(args: argparse.Namespace) -> tuple[object, object, object, str]:
    """The three models (or checkpoint paths) to time, and a description of them."""
    import torch

    from engine.detection import checkpoint_paths, default_weight_paths
    from engine.models import NoduleClassifier, SegmentationModel
    from engine.paths import REPO_ROOT

    given = model_paths_from_args(args)
    if any(given.values()):
        paths = checkpoint_paths(**given)
        return paths["segmentation"], paths["classifier"], paths["malignancy"], "given checkpoints: " + ", ".join(
            f"{kind} {path}" for kind, path in paths.items()
        )
    demo = default_weight_paths()
    if all(path.exists() for path in demo.values()):
        return demo["segmentation"], demo["classifier"], demo["malignancy"], f"demo weights ({demo['segmentation'].parent})"
    book = REPO_ROOT.parent / "shared" / "book"
    if (book / "seg_book.best.state").exists() and (book / "cls_book.best.state").exists():
        from engine.checkpoints import load_checkpoint

        classifier = load_checkpoint(book / "cls_book.best.state", "classifier").model
        return (
            book / "seg_book.best.state",
            classifier,
            finetune_like(classifier),
            "book weights (seg_book, cls_book); malignancy = cls_book with a re-initialised last block and head "
            "(the layout of a finetune_depth=2 model; no demo weights shipped yet)",
        )
    torch.manual_seed(0)
    classifier = NoduleClassifier()
    return (
        SegmentationModel(),
        classifier,
        finetune_like(classifier),
        "freshly initialised models (no demo or book weights found): candidate counts are not representative",
    )


def finetune_like(classifier):
    """A copy of ``classifier`` with block 4 and the head re-initialised: how a malignancy model
    fine-tuned with ``finetune_depth=2`` relates to its nodule classifier (frozen shared trunk)."""
    import torch

    model = copy.deepcopy(classifier)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1)
    for conv in (model.block4.conv1, model.block4.conv2):
        conv.reset_parameters()
    model.head_linear.reset_parameters()
    torch.random.set_rng_state(generator_state)
    return model


def standard_phantom(seed: int, folder: Path, slices: int = BENCH_SLICES) -> tuple[Path, str]:
    """Generate the standard phantom, write it as ``<uid>.mhd`` in ``folder``; return the path and a description."""
    import SimpleITK as sitk

    from engine.phantom import generate_series

    ct, truth = generate_series(seed, "standard", n_slices=slices)
    image = sitk.GetImageFromArray(ct.hu)
    image.SetSpacing(ct.geometry.spacing_xyz)
    image.SetOrigin(ct.geometry.origin_xyz)
    image.SetDirection(ct.geometry.direction)
    path = folder / f"{ct.series_uid}.mhd"
    sitk.WriteImage(image, str(path))
    spacing = " × ".join(f"{v:.3g}" for v in ct.geometry.spacing_xyz)
    return path, (
        f"standard phantom, seed {seed}, {ct.shape[0]}×{ct.shape[1]}×{ct.shape[2]}, spacing {spacing} mm (x,y,z), "
        f"{len(truth.nodules)} nodule(s)"
    )


def run(args: argparse.Namespace) -> int:
    from engine.io.ct import load_ct
    from engine.detection import Detector, DetectorConfig
    from engine.detection.benchmark import benchmark_detector, side_by_side
    from engine.devices import cpu_threads

    seg, cls, mal, weights = bench_models(args)
    backends = ("torch", "onnx") if args.backend == "both" else (args.backend,)
    reports = {}
    comparisons = {}
    with tempfile.TemporaryDirectory(prefix="lungcad-bench-") as tmp, cpu_threads(args.threads):
        print("generating the standard phantom ...", flush=True)
        path, series = standard_phantom(args.seed, Path(tmp), args.slices)
        for backend in backends:
            config = DetectorConfig(
                grouping=grouping_from_args(args), precision=args.precision, lung_region=not args.all_slices,
                backend=backend, threads=args.threads, cpu_streams=args.cpu_streams,
            )
            detector = Detector(seg, cls, mal, device=args.device, config=config)
            if args.compile:
                detector.compile(mode=None if args.compile == "default" else args.compile)
            print(f"timing {args.runs} run(s) after a warm-up on {detector.device}, backend {backend} ...", flush=True)
            report = benchmark_detector(
                detector, lambda: load_ct(path), runs=max(1, args.runs), weights=weights, series=series
            )
            reports[backend] = report
            print(report.table())
            for line in report.messages:
                print(f"note: {line}")
        if args.compare_book:
            from engine.detection.book_compare import compare_with_book, run_book_style

            print("running the book-style pipeline once (every slice, batch 4, scipy grouping) ...", flush=True)
            models = (detector.segmentation, detector.classifier, detector.malignancy)
            book = run_book_style(load_ct(path), models, detector.policy.device, config.grouping.seg_threshold)
            comparisons = {
                name: compare_with_book(book, r.medians_s, r.cpu_medians_s, r.candidates, r.nodules, r.backends)
                for name, r in reports.items()
            }
    if len(reports) > 1:
        print(side_by_side(reports))
    for comparison in comparisons.values():
        print(comparison.table())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "reports": {name: report.as_dict() for name, report in reports.items()},
            "book_comparison": {name: c.as_dict() for name, c in comparisons.items()} or None,
        }
        write_text_atomic(out, json.dumps(payload, indent=1))
        print(f"wrote {out}")
    return 0
