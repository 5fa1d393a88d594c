"""``python main.py gallery OUT_DIR [--seed S] [--preset small|standard]``: pictures of a phantom."""

from __future__ import annotations

import argparse

DESCRIPTION = "render slices and nodule/candidate close-ups of a synthetic phantom to PNG files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.demo import DEMO_SEED

    parser.add_argument("out_dir", help="folder for the PNG files (created)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"phantom seed (default {DEMO_SEED}, the demo series)")
    parser.add_argument("--preset", choices=("standard", "small"), default="standard", help="series size (default standard)")


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.files import check_output_folder
    from engine.phantom.gallery import render_gallery

    check_output_folder(args.out_dir)

    bar = ProgressBar("gallery ")
    try:
        paths = render_gallery(args.out_dir, args.seed, args.preset, progress=bar)
    finally:
        bar.close()
    for path in paths:
        print(path)
    return 0
