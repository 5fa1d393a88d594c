"""The model card a run keeps next to its best checkpoint (``run_dir/model_card.md``)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from engine.files import write_text_atomic
from engine.run_layout import RunLayout
from training.config import TrainConfig
from training.runs import LoopState

DISCLAIMER = "Not for clinical use."

#: Validation metrics shown in the card, per kind, in order.
CARD_METRICS = {
    "segmentation": ("recall", "precision", "dice", "tp_pct", "fn_pct", "fp_pct", "loss", "samples"),
    "classifier": ("f1", "precision", "recall", "f2", "auc", "correct_neg", "correct_pos", "tp", "fp", "tn", "fn", "loss"),
    "malignancy": ("auc", "f1", "precision", "recall", "correct_neg", "correct_pos", "tp", "fp", "tn", "fn", "loss"),
}


def launch_commands(paths: RunLayout) -> list[str]:
    """The command lines of every launch recorded in the run's ``config.json`` (first to last)."""
    try:
        record = json.loads(paths.config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    launches = record.get("launches") or [record]
    return [shlex.join(str(a) for a in launch.get("argv") or []) for launch in launches if launch.get("argv")]


def metrics_table(kind: str, metrics: dict[str, float]) -> list[str]:
    """Markdown table rows of the card's validation metrics."""
    rows = ["| metric | value |", "| --- | --- |"]
    for name in CARD_METRICS[kind]:
        if name in metrics:
            value = metrics[name]
            text = f"{value:.0f}" if name in ("tp", "fp", "tn", "fn", "samples") else f"{value:.4f}"
            rows.append(f"| {name} | {text} |")
    return rows


def write_run_card(paths: RunLayout, config: TrainConfig, state: LoopState, sha256: str, extra: dict[str, Any]) -> Path:
    """Write ``model_card.md`` describing ``best.pt``.

    Args:
        paths: The run folder.
        config: The run's settings.
        state: The loop state right after the best checkpoint was written.
        sha256: The best weights' sha256.
        extra: Checkpoint extras (fine-tuning source, dataset facts, ...).
    """
    lines = [
        f"# {config.kind} model — run `{config.run_name}`",
        "",
        f"> {DISCLAIMER} Trained by this project's trainer (`python -m training {config.kind}`).",
        "",
        f"- checkpoint: `checkpoints/best.pt` (engine format), weights sha256 `{sha256}`",
        f"- best epoch: {state.best_epoch} of {config.epochs} planned, selected by validation `{config.best_metric}`"
        f" = {state.best_score:.4f}",
        f"- samples seen when saved: {state.samples_seen}",
        f"- dataset: `{config.data}` (validation: every series whose position among the sorted uids is a"
        f" multiple of {config.val_stride})",
        f"- seed {config.seed}, batch {config.batch_size}, epoch size {config.epoch_size}, ratio {config.ratio},"
        f" optimizer {config.optimizer} (lr {config.lr}, momentum {config.momentum}), precision {config.precision}",
        f"- augmentation: {json.dumps(config.augment.to_dict())}",
    ]
    if config.finetune:
        lines.append(f"- fine-tuned from `{config.finetune}` (depth {config.finetune_depth}; {extra.get('source_id', '')})")
    if config.init:
        lines.append(f"- started from every weight of `{config.init}` ({extra.get('init_id', '')}), trained layers:"
                     f" {', '.join(extra.get('trained_children') or [])}")
    for key in ("dataset_series", "device", "world_size"):
        if key in extra:
            lines.append(f"- {key.replace('_', ' ')}: {extra[key]}")
    commands = launch_commands(paths)
    if commands:
        lines += ["", "Command (then each resume):" if len(commands) > 1 else "Command:", "", "```", *commands, "```"]
    lines += ["", "Validation metrics of the best epoch:", "", *metrics_table(config.kind, state.best_metrics)]
    lines += ["", f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]
    return write_text_atomic(paths.card, "\n".join(lines))
