"""``python -m training release``: turn a run's checkpoint into weights to ship or share.

The released file is the engine's checkpoint format without the optimizer
state (it is only needed to resume training), keeping the training metadata,
plus ``release_*`` fields saying where it came from. Next to it goes a model
card (``<name>.md``) written from that metadata: what was trained, on what,
with which command, the validation metrics of the selected epoch and the
weights' sha256, so the card and the file can be checked against each other.
The weights are bit-identical: the sha256 of the released file equals the
run's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

DESCRIPTION = "copy a run's checkpoint without optimizer state (for shipping) and write its model card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("checkpoint", help="a run's checkpoint (e.g. RUN_DIR/checkpoints/best.pt) or a run folder")
    parser.add_argument("--out", required=True, help="the released checkpoint to write (.pt); the card goes next to it (.md)")
    parser.add_argument("--kind", choices=("segmentation", "classifier", "malignancy"),
                        help="refuse the checkpoint unless it holds this kind of model")
    parser.add_argument("--notes", help="a Markdown file appended to the card (data description, evaluation, caveats)")


def card_text(kind: str, sha256: str, file_name: str, metadata: Mapping[str, Any], notes: str = "") -> str:
    """The model card of a released checkpoint, from its metadata.

    Args:
        kind: The model kind.
        sha256: The weights' sha256.
        file_name: The released file's name, as the card refers to it.
        metadata: The checkpoint's metadata (the trainer's, see ``training.loop``).
        notes: Markdown appended at the end.
    """
    from engine.run_layout import RunLayout
    from training.model_card import DISCLAIMER, launch_commands, metrics_table

    config = metadata.get("config") or {}
    loop_state = metadata.get("loop_state") or {}
    lines = [f"# `{file_name}` — {kind} model", "", f"> {DISCLAIMER} Trained by this project's trainer.", ""]
    lines.append(f"- weights sha256: `{sha256}`")
    if metadata.get("run"):
        lines.append(f"- run: `{metadata['run']}`, epoch {metadata.get('epoch')} of {config.get('epochs', '?')} planned,"
                     f" {metadata.get('samples_seen', '?')} training samples seen")
    if loop_state.get("best_score") is not None:
        lines.append(f"- selected by validation `{metadata.get('best_metric', config.get('best_metric'))}`"
                     f" = {float(loop_state['best_score']):.4f}")
    if config:
        lines.append(f"- data: `{config.get('data')}`; validation = every series whose position among the sorted"
                     f" uids is a multiple of {config.get('val_stride')} ({metadata.get('dataset_series', '?')})")
        lines.append(f"- seed {config.get('seed')}, batch {config.get('batch_size')}, epoch size {config.get('epoch_size')},"
                     f" ratio {config.get('ratio')}, optimizer {config.get('optimizer')} (lr {config.get('lr')}),"
                     f" precision {config.get('precision')}, device {metadata.get('device', config.get('device'))}")
        lines.append(f"- augmentation: {json.dumps(config.get('augment'))}")
        if kind == "segmentation":
            lines.append(f"- loss: soft Dice over each {config.get('dice_over', 'sample')} + {config.get('fn_weight')} ×"
                         f" false-negative Dice + {config.get('bce_weight', 0)} × BCE; nodule slices:"
                         f" {config.get('nodule_slices', 'centre')}")
        if config.get("finetune"):
            lines.append(f"- fine-tuned from `{config['finetune']}` ({metadata.get('source_id', '?')}),"
                         f" trained layers: {', '.join(metadata.get('trained_children') or []) or '?'}")
        if config.get("init"):
            lines.append(f"- started from every weight of `{config['init']}` ({metadata.get('init_id', '?')}),"
                         f" trained layers: {', '.join(metadata.get('trained_children') or []) or '?'}")
    if metadata.get("torch_version"):
        lines.append(f"- torch {metadata['torch_version']}, saved {metadata.get('saved_at', '?')}")
    commands = launch_commands(RunLayout(Path(config["run_dir"]))) if config.get("run_dir") else []
    if commands:
        lines += ["", "Training command (then each resume):" if len(commands) > 1 else "Training command:", "",
                  "```", *commands, "```"]
    best = loop_state.get("best_metrics") or {}
    if best:
        lines += ["", "Validation metrics of the selected epoch:", "", *metrics_table(kind, best)]
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def release(checkpoint: str | Path, out: str | Path, kind: str | None = None, notes: str = "") -> tuple[Path, Path, str]:
    """Write ``out`` (weights + metadata, no optimizer state) and its card ``out`` with ``.md``.

    Returns:
        ``(checkpoint path, card path, sha256)``.

    Raises:
        CheckpointError (and subclasses): the source cannot be loaded, or holds another kind.
    """
    from engine.checkpoints import load_checkpoint, save_checkpoint
    from engine.files import write_text_atomic
    from engine.run_layout import RunLayout

    source = Path(checkpoint)
    if source.is_dir():
        source = RunLayout(source).best
    loaded = load_checkpoint(source, expected_kind=kind)
    out = Path(out)
    metadata = {**loaded.metadata, "release_source": str(source), "release_source_sha256": loaded.sha256,
                "released_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    sha = save_checkpoint(out, loaded.model, loaded.kind, model_args=loaded.model_args, metadata=metadata)
    card = out.with_suffix(".md")
    write_text_atomic(card, card_text(loaded.kind, sha, out.name, loaded.metadata, notes))
    return out, card, sha


def run(args: argparse.Namespace) -> int:
    """Release one checkpoint; exit status 0, or 2 when it cannot be read or is of the wrong kind."""
    from engine.errors import EngineError

    try:
        notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
    except OSError as exc:
        print(f"error: {args.notes}: cannot read the notes: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        out, card, sha = release(args.checkpoint, args.out, kind=args.kind, notes=notes)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out}  sha256 {sha}\n{card}")
    return 0
