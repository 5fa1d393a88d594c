"""Command line of the trainers: ``python -m training`` (also ``python main.py train``).

    python -m training segmentation|classifier|malignancy --data DIR [options] RUN_NAME
    python -m training KIND --resume RUN_DIR [--epochs N ...]
    python -m training prepcache --data DIR [--kind all] [--num-workers N]
    python -m training bench [--kind all] [--data DIR] [--device cuda]

Training prints one JSON object per line on stdout (see
docs/training-protocol.md) and a human-readable line per epoch on stderr.
Multi-GPU: ``torchrun --nproc_per_node N -m training KIND ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.choices import PRECISION_CHOICES
from training.choices import OPTIMIZERS, TRAIN_KINDS

DESCRIPTION = "train the segmentation, nodule classifier and malignancy models; prepcache; bench"
_EPILOG = "Not for clinical use. Stop a run gracefully by creating the file STOP in its run folder, or with Ctrl-C."

#: Option destination → TrainConfig field, for options that map one to one.
_DIRECT = (
    "data", "epochs", "batch_size", "val_batch_size", "num_workers", "ratio", "epoch_size", "val_stride",
    "validation_cadence", "finetune", "finetune_depth", "init", "init_depth", "device", "precision", "seed", "optimizer", "lr",
    "momentum", "weight_decay", "fn_weight", "crop_size", "best_metric", "cache_dir", "cache_residency", "threshold",
    "channels_last", "dice_over", "bce_weight", "nodule_slices", "candidates",
    "candidate_positives",
)


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("run_name", nargs="?", metavar="RUN_NAME", help="name of the run (default folder: <user data>/runs/RUN_NAME)")
    add("--data", help="LUNA16-format dataset folder (subset*/, annotations*.csv, candidates.csv)")
    add("--epochs", type=int, help="last epoch to train (default 1)")
    add("--batch-size", type=int, help="training samples per step and process (32; segmentation 16)")
    add("--val-batch-size", type=int, help="validation samples per forward pass (64; segmentation 8 slices)")
    add("--num-workers", type=int, help="processes reading the crop cache from host memory/disk and filling it (0)")
    add("--ratio", type=int, help="negatives per positive in balanced sampling; 0 = natural order (1); segmentation: "
        "crops around non-nodule candidates per nodule crop (0)")
    add("--epoch-size", type=int, help="training samples per epoch (classifier 200000, malignancy 50000, segmentation 300000)")
    add("--val-stride", type=int, help="every Nth series (sorted uids) is validation (10)")
    add("--validation-cadence", type=int, help="validate at epoch 1 and every N epochs (5; 1 when fine-tuning)")
    add("--augmented", action="store_true", help="turn on every augmentation with the book's magnitudes")
    add("--augment-flip", action="store_true", help="mirror each axis with p = 0.5")
    add("--augment-offset", type=float, nargs="?", const=-1.0, metavar="F", help="random shift up to F of the half-extent (0.1; segmentation 0.03)")
    add("--augment-scale", type=float, nargs="?", const=-1.0, metavar="F", help="random scale 1 ± F (0.2)")
    add("--augment-rotate", action="store_true", help="random rotation in the row/col plane")
    add("--augment-noise", type=float, nargs="?", const=-1.0, metavar="HU", help="Gaussian noise of sigma HU (25)")
    add("--finetune", metavar="CKPT", help="start from this classifier checkpoint (ours or a book .state), new head")
    add("--init", metavar="CKPT",
        help="start from every weight of this classifier/malignancy checkpoint (head included) and train them all,"
             " e.g. to continue a released model on new data")
    add("--init-depth", type=int, metavar="N",
        help="with --init: train only the last N parameterised children (2 = last block + head; 0 = all, the default)")
    add("--finetune-depth", type=int, choices=(1, 2), help="trained children from the end: 1 head, 2 last block + head (1)")
    add("--device", help="auto, cpu, cuda, cuda:N or mps (auto)")
    add("--precision", choices=PRECISION_CHOICES, help="autocast type (auto: bfloat16 on CUDA)")
    add("--seed", type=int, help="seed of sampling, augmentation and initialisation (1)")
    add("--optimizer", choices=OPTIMIZERS, help="sgd (classifiers) or adam (segmentation)")
    add("--lr", type=float, help="learning rate (0.001)")
    add("--momentum", type=float, help="SGD momentum (0.99)")
    add("--weight-decay", type=float, help="L2 weight decay (0)")
    add("--fn-weight", type=float, help="segmentation: weight of the false-negative Dice term (8)")
    add("--crop-size", type=int, help="segmentation: random training window, pixels (64)")
    add("--dice-over", choices=("sample", "batch"), help="segmentation: soft-Dice sums per sample (the book) or per batch")
    add("--nodule-slices", choices=("centre", "all"),
        help="segmentation: train on each nodule's centre slice (the book) or on all its slices (centre)")
    add("--candidates", metavar="CSV",
        help="candidates CSV instead of DATA/candidates.csv (e.g. candidates_V2.csv, or mined hard negatives)")
    add("--candidate-positives", action="store_true", default=None,
        help="also train on the candidates file's class-1 rows inside an annotated nodule (e.g. the detector centres"
             " of mine-negatives --positives), labelled like that nodule")
    add("--bce-weight", type=float, help="segmentation: weight of an added pixel-wise binary cross-entropy (0)")
    add("--best-metric", help="validation metric selecting best.pt (recall / f1 / auc)")
    add("--cache-dir", help="crop cache folder (default: per-user cache folder of the dataset)")
    add("--cache-residency", choices=("auto", "device", "memory", "disk"), help="where the cached crops are held (auto)")
    add("--threshold", type=float, help="probability called positive in the metrics (0.5)")
    add("--run-dir", help="the run folder itself (default: <user data>/runs/RUN_NAME)")
    add("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR up to --epochs")
    add("--no-channels-last", dest="channels_last", action="store_false", default=None,
        help="keep the default (channels-first) memory layout instead of channels-last")
    add("--no-json", action="store_true", help="do not print JSON events on stdout (metrics.jsonl still gets them)")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training`` parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="python -m training", description=DESCRIPTION, epilog=_EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for kind in TRAIN_KINDS:
        _add_training_options(sub.add_parser(kind, help=f"train the {kind} model", epilog=_EPILOG))
    from training import bench, mine, prepcache_command, release, shape_head, size_head

    prepcache_command.add_arguments(sub.add_parser("prepcache", help=prepcache_command.DESCRIPTION, epilog=_EPILOG))
    bench.add_arguments(sub.add_parser("bench", help=bench.DESCRIPTION, epilog=_EPILOG))
    release.add_arguments(sub.add_parser("release", help=release.DESCRIPTION, epilog=_EPILOG))
    mine.add_arguments(sub.add_parser("mine-negatives", help=mine.DESCRIPTION, epilog=_EPILOG))
    size_head.add_arguments(sub.add_parser("size-head", help=size_head.DESCRIPTION, epilog=_EPILOG))
    shape_head.add_arguments(sub.add_parser("shape-head", help=shape_head.DESCRIPTION, epilog=_EPILOG))
    return parser


def _augment(kind: str, args: argparse.Namespace, base: Any) -> Any:
    """The augmentation settings: ``base`` (or the book's with ``--augmented``) plus the explicit switches."""
    from training.augmentation import CLASSIFIER_AUGMENTATION, SEGMENTATION_AUGMENTATION, AugmentConfig

    book = SEGMENTATION_AUGMENTATION if kind == "segmentation" else CLASSIFIER_AUGMENTATION
    values = (book if args.augmented else base).to_dict()
    if args.augment_flip:
        values["flip"] = True
    if args.augment_rotate:
        values["rotate"] = True
    for name in ("offset", "scale", "noise"):
        given = getattr(args, f"augment_{name}")
        if given is not None:
            values[name] = getattr(book, name) if given < 0 else given
    return AugmentConfig(**values)


def config_from_args(kind: str, args: argparse.Namespace) -> tuple[Any, bool]:
    """Merge defaults, a resumed run's saved settings and the explicit options.

    Returns:
        ``(TrainConfig, resume)``.

    Raises:
        TrainingRunError: missing ``--data``/run name, or a resumed run of another kind.
    """
    from engine.errors import TrainingRunError
    from engine.paths import runs_dir
    from engine.run_layout import RunLayout, check_run_name
    from training.augmentation import AugmentConfig
    from training.choices import kind_defaults
    from training.config import TrainConfig, read_config
    from training.distributed import launched_by_torchrun

    explicit = {name: getattr(args, name) for name in _DIRECT if getattr(args, name) is not None}
    if args.resume:
        run_dir = Path(args.resume)
        if not RunLayout(run_dir).config.is_file():
            raise TrainingRunError("holds no config.json: there is no run to resume here", run_dir)
        saved = read_config(RunLayout(run_dir).config)
        if saved.kind != kind:
            raise TrainingRunError(f"holds a {saved.kind} run, not a {kind} run", run_dir)
        values = {**saved.to_dict(), **explicit}
        values["augment"] = _augment(kind, args, saved.augment).to_dict()
        values["run_dir"] = str(run_dir.resolve())
        return TrainConfig.from_dict(values), True
    if not explicit.get("data"):
        raise TrainingRunError("--data DATASET_FOLDER is required to start a run")
    if not Path(explicit["data"]).is_dir():  # before any run folder exists: a typo leaves nothing behind
        raise TrainingRunError("is not a dataset folder (no such folder)", explicit["data"])
    if not args.run_name and not args.run_dir:
        if launched_by_torchrun():
            raise TrainingRunError("name the run (RUN_NAME or --run-dir) when launching with torchrun")
        args.run_name = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.run_name:
        check_run_name(args.run_name)
    run_dir = Path(args.run_dir) if args.run_dir else runs_dir() / args.run_name
    run_name = args.run_name or run_dir.name
    values = {**kind_defaults(kind, fine_tuning=bool(explicit.get("finetune"))), **explicit}
    values["data"] = str(Path(values["data"]).resolve())
    if values.get("candidates"):
        values["candidates"] = str(Path(values["candidates"]).resolve())
    for name in ("finetune", "init"):
        if values.get(name):
            values[name] = str(Path(values[name]).resolve())
    augment = _augment(kind, args, AugmentConfig())
    return TrainConfig(kind=kind, run_name=run_name, run_dir=str(run_dir.resolve()), augment=augment, **values), False


def main(argv: list[str] | None = None) -> int:
    """Run a ``python -m training`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "prepcache":
        from training import prepcache_command

        return prepcache_command.run(args)
    if args.command == "bench":
        from training import bench

        return bench.run(args)
    if args.command == "release":
        from training import release

        return release.run(args)
    if args.command == "mine-negatives":
        from training import mine

        return mine.run(args)
    if args.command == "size-head":
        from training import size_head

        return size_head.run(args)
    if args.command == "shape-head":
        from training import shape_head

        return shape_head.run(args)
    from engine.errors import EngineError
    from training.runner import EXIT_BAD_INPUT, run_training

    try:
        config, resume = config_from_args(args.command, args)
    except (EngineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_training(config, resume=resume, argv=["python", "-m", "training", *argv], json_stdout=not args.no_json)
