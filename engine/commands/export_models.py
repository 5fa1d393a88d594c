"""``python main.py export OUT_DIR``: the three models as ONNX, TorchScript and torch.export, checked and described."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = "export the models (ONNX, TorchScript, torch.export; optional int8), each checked against eager"
#: ``engine.deploy.export.FORMATS``, spelled out so that building the parser does not import torch.
FORMAT_NAMES = ("onnx", "torchscript", "exported")


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMAT_NAMES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="folder to write (created; an earlier export there is replaced)")
    parser.add_argument("--seg", default=None, help="segmentation checkpoint (default: the demo weights)")
    parser.add_argument("--cls", default=None, help="nodule classifier checkpoint (default: the demo weights)")
    parser.add_argument("--mal", default=None, help="malignancy classifier checkpoint (default: the demo weights)")
    parser.add_argument("--format", type=_formats, default=FORMAT_NAMES,
                        help="comma-separated formats (default onnx,torchscript,exported)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="also write int8 classifier/malignancy ONNX files (static, phantom calibration) and "
                             "measure their speed and agreement")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest |Δp| an export may show against the eager model (default 1e-4)")


def run(args: argparse.Namespace) -> int:
    from engine.deploy.bundle import ExportRequest, export_models
    from engine.files import check_output_folder

    check_output_folder(args.out_dir, [p for p in (args.seg, args.cls, args.mal) if p], replaced=True)
    request = ExportRequest(
        out_dir=Path(args.out_dir),
        checkpoints={k: Path(v) for k, v in {"segmentation": args.seg, "classifier": args.cls, "malignancy": args.mal}.items() if v},
        formats=tuple(args.format),
        quantize=args.quantize,
        tolerance=args.tolerance,
    )
    export_models(request, log=lambda line: print(line, flush=True))
    return 0
