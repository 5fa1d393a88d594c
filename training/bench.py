"""``python -m training bench``: training throughput of each trainer, in samples per second.

Three numbers per trainer, all measured with the production training step
(gather from the cache store → on-device augmentation → forward → backward →
optimizer step), after warm-up batches:

* ``model`` — one fixed batch already on the device, repeated: the model's own limit.
* ``synthetic`` — random crops in a device-resident store, the full data path.
* ``real`` — the dataset's crop cache (``--data``), as training reads it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.choices import TRAIN_KINDS

DESCRIPTION = "measure training samples/s of each trainer (synthetic batches and the real data path)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--kind", choices=("all", *TRAIN_KINDS), default="all", help="which trainer (all)")
    parser.add_argument("--data", help="LUNA16-format dataset for the real data path (skipped without it)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (auto)")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--batch-size", type=int, help="samples per step (trainer default)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument("--no-augment", action="store_true", help="measure without augmentation")
    parser.add_argument("--num-workers", type=int, default=0, help="cache reader processes for the real path (0)")
    parser.add_argument("--cache-residency", default="auto", choices=("auto", "device", "memory", "disk"))
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")


def _config(kind: str, args: argparse.Namespace, data: str, epoch_size: int) -> Any:
    from training.augmentation import CLASSIFIER_AUGMENTATION, NO_AUGMENTATION, SEGMENTATION_AUGMENTATION
    from training.choices import kind_defaults
    from training.config import TrainConfig

    values = kind_defaults(kind)
    if args.batch_size:
        values["batch_size"] = args.batch_size
    values["epoch_size"] = epoch_size
    augment = SEGMENTATION_AUGMENTATION if kind == "segmentation" else CLASSIFIER_AUGMENTATION
    return TrainConfig(
        kind=kind, run_name=f"bench-{kind}", data=data, run_dir="", augment=NO_AUGMENTATION if args.no_augment else augment,
        device=args.device, precision=args.precision, num_workers=args.num_workers,
        cache_residency=args.cache_residency, **values,
    )


def _synthetic_task(kind: str, config: Any, device: torch.device) -> Any:
    from training.classifier_task import ClassifierTask
    from training.datasets import CandidateTable, ClassificationData
    from training.distributed import DistContext
    from training.segmentation_data import SegmentationData
    from training.segmentation_task import SegmentationTask
    from training.stores import RowStore

    rng = np.random.default_rng(0)
    rows = max(256, 2 * config.batch_size)
    residency = "device" if device.type != "cpu" else "memory"
    if kind == "segmentation":
        crops = rng.integers(-1000, 1000, size=(rows, 7, 96, 96), dtype=np.int16)
        labels = np.zeros((rows, 96, 96), dtype=bool)
        labels[:, 40:56, 40:56] = True
        data = SegmentationData(RowStore([crops], residency, device), RowStore([labels], residency, device), [])
        return SegmentationTask(config, DistContext(), device, data)
    crops = rng.integers(-1000, 1000, size=(rows, 32, 48, 48), dtype=np.int16)
    flags = np.arange(rows) % 2 == 0
    table = CandidateTable(
        is_nodule=flags, is_malignant=flags & (np.arange(rows) % 4 == 0), diameter_mm=np.where(flags, 8.0, 0.0),
        series=np.zeros(rows, np.int32), is_train=np.ones(rows, bool), uids=("synthetic",),
    )
    return ClassifierTask(config, DistContext(), device, ClassificationData(RowStore([crops], residency, device), table))


def _loop(task: Any, config: Any, device: torch.device) -> Any:
    from engine.checkpoints import build_model
    from engine.run_layout import RunLayout
    from training.distributed import DistContext
    from training.events import EventLog
    from training.loop import TrainingLoop, build_optimizer, training_precision
    from training.runs import LoopState
    from training.stopping import StopRequest

    torch.manual_seed(0)
    model = build_model(config.kind, task.model_args())
    task.prepare_model(model, load_weights=True)
    model.to(device=device, memory_format=task.memory_format)
    optimizer = build_optimizer(config, list(model.parameters()))
    events = EventLog(config.run_name, None, enabled=False)
    paths = RunLayout(Path("."))
    return TrainingLoop(
        task, model, task.model_args(), optimizer, config, paths, events, {}, DistContext(), device,
        training_precision(device, config.precision), StopRequest(Path("/nonexistent-bench-run")), LoopState(),
    )


def _time_epoch(loop: Any) -> float:
    """Samples/s of one training epoch (the loop synchronises at the epoch's end)."""
    metrics, _ = loop.train_epoch(1)
    return float(metrics["samples_per_s"])


def _model_only(loop: Any, task: Any, config: Any, steps: int, warmup: int) -> float:
    rows = np.arange(config.batch_size) % len(task.data.crops)
    batch = task.gather(rows, (rows % 2).astype(np.int64))
    generator = torch.Generator(device=loop.device).manual_seed(0)
    loop.task.set_train_mode(loop.model)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            _synchronise(loop.device)
            started = time.perf_counter()
        with loop.precision.autocast():
            output = task.step(loop.model, batch, True, generator)
        loop.optimizer.zero_grad(set_to_none=True)
        output.losses.mean().backward()
        loop.optimizer.step()
    _synchronise(loop.device)
    return steps * config.batch_size / (time.perf_counter() - started)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(kind: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The three throughputs of one trainer."""
    steps, warmup = args.steps, args.warmup
    probe = _config(kind, args, args.data or "", 1)
    batch = probe.batch_size
    result: dict[str, Any] = {"kind": kind, "batch_size": batch, "augmented": not args.no_augment}
    config = _config(kind, args, args.data or "", batch * warmup)
    task = _synthetic_task(kind, config, device)
    loop = _loop(task, config, device)
    result["precision"] = loop.precision.name
    result["model"] = _model_only(loop, task, config, steps, warmup)
    _time_epoch(loop)  # warm-up
    loop.config = config.with_updates(epoch_size=batch * steps)
    task.config = loop.config
    result["synthetic"] = _time_epoch(loop)
    if args.data:
        from training.distributed import DistContext
        from training.events import EventLog
        from training.runner import build_task

        real_config = _config(kind, args, str(Path(args.data).resolve()), batch * warmup)
        real_task, _ = build_task(real_config, DistContext(), device, EventLog(kind, None, enabled=False))
        real_loop = _loop(real_task, real_config, device)
        _time_epoch(real_loop)
        real_loop.config = real_config.with_updates(epoch_size=batch * steps)
        real_task.config = real_loop.config
        result["real"] = _time_epoch(real_loop)
        result["cache_residency"] = getattr(getattr(real_task.data, "crops", None), "residency", None)
    return result


def run(args: argparse.Namespace) -> int:
    """Measure, print a table, optionally write JSON; exit status 0 (2 on a bad device or dataset)."""
    from engine.devices import resolve_device
    from engine.errors import EngineError
    from engine.files import write_text_atomic

    try:
        device = resolve_device(args.device)
        if device.type == "cpu":
            torch.set_flush_denormal(True)  # as training does
        kinds = TRAIN_KINDS if args.kind == "all" else (args.kind,)
        results = [measure(kind, args, device) for kind in kinds]
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads; samples/s:")
    print(f"{'trainer':13} {'batch':>5} {'precision':>9} {'model':>9} {'synthetic':>10} {'real':>9}")
    for r in results:
        real = f"{r['real']:9.1f}" if "real" in r else f"{'-':>9}"
        print(f"{r['kind']:13} {r['batch_size']:5d} {r['precision']:>9} {r['model']:9.1f} {r['synthetic']:10.1f} {real}")
    if args.json_out:
        record = {"device": str(device), "device_name": name, "torch": torch.__version__, "results": results}
        write_text_atomic(args.json_out, json.dumps(record, indent=2) + "\n")
    return 0
