"""``python main.py analyze PATH``: detect nodules in one CT and print the findings."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from engine.commands.options import add_grouping_arguments, add_model_arguments, grouping_from_args, model_paths_from_args

if TYPE_CHECKING:
    from engine.detection import DetectionResult, Detector

DESCRIPTION = "detect nodule candidates in a CT (file or DICOM folder) and print the findings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a .mhd/.mha/.nii/.nii.gz/.nrrd file or a DICOM folder")
    parser.add_argument("--series", default=None, help="series uid to load from a DICOM folder with several")
    add_model_arguments(parser)
    parser.add_argument("--csv", default=None, help="write the LUNA16 submission CSV (seriesuid,coordX,coordY,coordZ,probability)")
    parser.add_argument("--json", default=None, help="write all candidates (voxel and LPS coordinates) as JSON")
    parser.add_argument("--nodule-threshold", type=float, default=0.5, help="p_nodule shown as a finding (default 0.5)")
    parser.add_argument("--malignancy-threshold", type=float, default=0.5, help="p_malignant flagged malignant (default 0.5)")
    add_grouping_arguments(parser)
    parser.add_argument("--all-slices", action="store_true", help="segment every slice in full (no lung-region search)")


def detector_from_args(args: argparse.Namespace) -> Detector:
    """Build the :class:`~engine.detection.Detector` the options ask for (demo weights for those not given).

    Raises:
        CheckpointError: a checkpoint file is missing or unusable.
        DeviceError: the device is not available.
    """
    from engine.detection import Detector, DetectorConfig

    config = DetectorConfig(
        grouping=grouping_from_args(args), precision=args.precision, lung_region=not args.all_slices, backend=args.backend
    )
    return Detector.from_checkpoints(**model_paths_from_args(args), device=args.device, config=config)


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.io.ct import load_ct
    from engine.detection.result import NOT_FOR_CLINICAL_USE
    from engine.export import luna_rows, write_findings_json, write_luna_csv

    from engine.commands.outputs import check_outputs, write_outputs
    from engine.io.ct import input_files

    inputs = [*input_files(args.path), *(p for p in model_paths_from_args(args).values() if p)]
    check_outputs({"--csv": args.csv, "--json": args.json}, inputs)  # before detection: refused outputs cost nothing
    began = time.perf_counter()
    ct = load_ct(args.path, args.series)
    load_seconds = time.perf_counter() - began
    for line in ct.notes:
        print(f"note: {line}")
    for line in ct.warnings:
        print(f"warning: {line}")
    detector = detector_from_args(args)
    bar = ProgressBar(label="detect ")
    try:
        result = detector.detect(ct, progress=bar if sys.stderr.isatty() else _stage_only(bar))
    finally:
        bar.close()
    print(f"series {ct.series_uid}: {ct.shape[0]} slices of {ct.shape[1]}×{ct.shape[2]}, loaded in {load_seconds:.2f} s")
    print(f"grouping: {result.grouping.describe()}")
    print(format_findings(result, args.nodule_threshold, args.malignancy_threshold))
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
    print(f"time (s): {stages}; device {result.device} ({result.precision})")
    print("models: " + ", ".join(f"{k} {v}" for k, v in result.model_ids.items()))
    for line in result.messages:
        print(f"note: {line}")
    options = {"nodule_threshold": args.nodule_threshold, "malignancy_threshold": args.malignancy_threshold}
    writers = {
        "--csv": (args.csv, lambda path: write_luna_csv(luna_rows(result), path)),
        "--json": (args.json, lambda path: write_findings_json(result, path, source=str(ct.source_path), **options)),
    }
    failed = write_outputs(writers)
    print(NOT_FOR_CLINICAL_USE)
    return 1 if failed else 0


def _stage_only(bar):
    """Progress that passes only the stage name (``"segmentation 40/300 slices"`` → ``"segmentation"``),
    so that a log (stderr not a terminal) gets one line per stage."""
    import re

    counts = re.compile(r"\s+\d+/\d+\s+\w+$")
    return lambda fraction, text: bar(fraction, counts.sub("", text))


def format_findings(result: DetectionResult, nodule_threshold: float = 0.5, malignancy_threshold: float = 0.5) -> str:
    """The findings table: candidates with ``p_nodule >= nodule_threshold``, most probable first."""
    nodules = result.nodules(nodule_threshold)
    lines = [
        f"{len(result.candidates)} candidates, {len(nodules)} with p_nodule >= {nodule_threshold:g}"
        + (":" if nodules else ".")
    ]
    if nodules:
        lines.append(f"{'id':>5} {'p_nodule':>8} {'p_malig':>8} {'':3} {'diam mm':>7}  {'x, y, z (LPS mm)':>26}  {'slice':>5}")
        for c in nodules:
            flag = "MAL" if c.p_malignant >= malignancy_threshold else ""
            x, y, z = c.center_xyz
            lines.append(
                f"{c.id:>5} {c.p_nodule:8.3f} {c.p_malignant:8.3f} {flag:3} {c.diameter_mm:7.1f}  "
                f"{x:8.1f},{y:8.1f},{z:8.1f}  {c.slice_index:>5}"
            )
    return "\n".join(lines)
