"""``python main.py demo-data OUT --series N --seed S [--preset small|standard]``: write phantoms in LUNA16 layout."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "generate synthetic chest CT phantoms as a LUNA16-format dataset (subset*/<uid>.mhd + CSVs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset folder to write (created; same-named files are replaced)")
    parser.add_argument("--series", type=int, default=10, help="number of series (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; the same seed gives the same files (default 0)")
    parser.add_argument("--preset", choices=("standard", "small"), default="standard",
                        help="standard: 512x512, 100-450 slices, ~160-200 MB each; small: 160x160x64 (default standard)")


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.phantom.dataset import write_dataset

    if args.series < 1:
        print("error: --series must be at least 1", file=sys.stderr)
        return 2
    bar = ProgressBar("demo-data ")
    try:
        summary = write_dataset(args.out, args.series, args.seed, args.preset, progress=bar)
    finally:
        bar.close()
    print(f"wrote {len(summary.series_uids)} {args.preset} series to {summary.root}")
    print(f"  nodules: {summary.n_nodules} ({summary.n_malignant} malignant), excluded findings: {summary.n_excluded}")
    rate = 1000.0 * summary.n_positive_candidates / max(summary.n_candidates, 1)
    print(f"  candidates: {summary.n_candidates} ({summary.n_positive_candidates} class 1, {rate:.1f} per thousand)")
    print("synthetic phantoms, not patient data")
    return 0
