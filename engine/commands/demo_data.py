"""``python main.py demo-data OUT --series N --seed S [--preset small|standard]``: write phantoms in LUNA16 layout.

``--nodule-kinds``/``--nodules-per-series``/``--nodule-diameters``/``--nodule-locations`` force the
nodules of every series (to enrich a training set in rare kinds such as
ground-glass); ``--append`` adds the series to an existing dataset folder.
"""

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
    parser.add_argument("--nodule-kinds", metavar="KIND[,KIND...]",
                        help="force every series' nodules to these kinds, in turn (solid, part-solid, ground-glass);"
                             " default: drawn like LUNA16's")
    parser.add_argument("--nodules-per-series", type=int, metavar="N",
                        help="nodules per series with --nodule-kinds (default 2)")
    parser.add_argument("--nodule-diameters", metavar="LOW,HIGH",
                        help="with --nodule-kinds: draw diameters log-uniformly in LOW-HIGH mm (default: LUNA16's histogram)")
    parser.add_argument("--nodule-locations", metavar="WHERE[,WHERE...]",
                        help="with --nodule-kinds: place the nodules at these locations, in turn (parenchyma,"
                             " juxtapleural, juxtavascular); default: drawn like LUNA16's")
    parser.add_argument("--append", action="store_true",
                        help="add the series to the dataset already in OUT (its CSV rows are kept; new series go to"
                             " its subset folders); use a --seed the dataset was not made with")


def _mix(args: argparse.Namespace):  # -> NoduleMix | None; raises ValueError
    from engine.phantom.dataset import NoduleMix

    if args.nodule_kinds is None:
        if args.nodule_diameters is not None or args.nodules_per_series is not None or args.nodule_locations is not None:
            raise ValueError("--nodule-diameters, --nodules-per-series and --nodule-locations need --nodule-kinds")
        return None
    kinds = tuple(k.strip() for k in args.nodule_kinds.split(",") if k.strip())
    diameters = None
    if args.nodule_diameters is not None:
        try:
            low, high = (float(v) for v in args.nodule_diameters.split(","))
        except ValueError:
            raise ValueError(f"--nodule-diameters wants LOW,HIGH in mm, got {args.nodule_diameters!r}") from None
        diameters = (low, high)
    locations = None
    if args.nodule_locations is not None:
        locations = tuple(w.strip() for w in args.nodule_locations.split(",") if w.strip())
    per_series = 2 if args.nodules_per_series is None else args.nodules_per_series
    return NoduleMix(kinds, per_series, diameters, locations)


def run(args: argparse.Namespace) -> int:
    from engine.commands.progress import ProgressBar
    from engine.files import check_output_folder
    from engine.phantom.dataset import write_dataset

    check_output_folder(args.out)

    if args.series < 1:
        print("error: --series must be at least 1", file=sys.stderr)
        return 2
    try:
        mix = _mix(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar = ProgressBar("demo-data ")
    try:
        summary = write_dataset(args.out, args.series, args.seed, args.preset, progress=bar, mix=mix, append=args.append)
    finally:
        bar.close()
    verb = "appended" if args.append else "wrote"
    print(f"{verb} {len(summary.series_uids)} {args.preset} series to {summary.root}")
    print(f"  nodules: {summary.n_nodules} ({summary.n_malignant} malignant), excluded findings: {summary.n_excluded}")
    rate = 1000.0 * summary.n_positive_candidates / max(summary.n_candidates, 1)
    print(f"  candidates: {summary.n_candidates} ({summary.n_positive_candidates} class 1, {rate:.1f} per thousand)")
    print("synthetic phantoms, not patient data")
    return 0
