"""``python main.py info PATH``: describe a CT file or DICOM folder."""

from __future__ import annotations

import argparse

import numpy as np

DESCRIPTION = "print size, spacing, origin, direction, HU range, modality and series of a CT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a .mhd/.mha/.nii/.nii.gz/.nrrd file or a DICOM folder")
    parser.add_argument("--series", default=None, help="series uid to load from a DICOM folder with several")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.io.ct import load_ct
    from engine.io.dicom import list_dicom_series

    path = Path(args.path)
    if path.is_dir():
        series = list_dicom_series(path)
        if len(series) > 1:
            print(f"{len(series)} series in {path}:")
            for s in series:
                thick = f"{s.slice_thickness_mm:g} mm" if s.slice_thickness_mm else "?"
                print(f"  {s.uid}  {s.modality or '?':3}  {s.slice_count:4d} slices  thickness {thick}  {s.description}")
    ct = load_ct(path, args.series)
    g = ct.geometry
    lo, hi = ct.hu_range()
    direction = np.asarray(g.direction).reshape(3, 3)
    size_xyz = ct.shape[::-1]
    print(f"file:        {ct.source_path}")
    print(f"series uid:  {ct.series_uid}")
    print(f"modality:    {ct.modality}")
    print(f"size:        {size_xyz[0]} x {size_xyz[1]} x {size_xyz[2]} voxels (x, y, z); array {ct.shape} (index,row,col)")
    print("spacing:     " + " x ".join(f"{v:.4g}" for v in g.spacing_xyz) + " mm (x, y, z)")
    print("origin:      (" + ", ".join(f"{v:.3f}" for v in g.origin_xyz) + ") LPS mm")
    print("direction:   " + "  ".join("[" + " ".join(f"{v:+.4f}" for v in row) + "]" for row in direction))
    print("extent:      " + " x ".join(f"{v:.1f}" for v in ct.extent_mm()[::-1]) + " mm (x, y, z)")
    print(f"HU range:    {lo} .. {hi}")
    for key, value in ct.header.items():
        print(f"{key + ':':13}{value}")
    for note in ct.notes:
        print(f"note:        {note}")
    for warning in ct.warnings:
        print(f"warning:     {warning}")
    return 0
