"""Start (or resume) one training run: devices, processes, data, model, loop, events, exit status.

Exit statuses: 0 completed or stopped on request, 1 unexpected failure,
2 unusable input (dataset, checkpoint, run folder, device), 130 interrupted
by a second Ctrl-C. Every failure also ends with an ``error`` event.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import torch

from engine.errors import EngineError
from engine.run_layout import RunLayout
from training.config import TrainConfig, write_config
from training.distributed import DistContext, init_distributed, shutdown
from training.events import PROTOCOL_VERSION, EventLog
from training.loop import TrainingLoop, build_optimizer, training_precision
from training.runs import LoopState, RunStart, start_run_dir
from training.stopping import StopRequest

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def training_device(config: TrainConfig, context: DistContext) -> torch.device:
    """The device this process trains on (``cuda:LOCAL_RANK`` in a multi-GPU run)."""
    from engine.devices import resolve_device

    device = resolve_device(config.device)
    if device.type == "cuda" and context.distributed:
        device = torch.device("cuda", context.local_rank)
    return device


def build_task(config: TrainConfig, context: DistContext, device: torch.device, events: EventLog) -> Any:
    """Open the dataset, fill/load the crop cache (rank 0 fills, the others wait) and make the task."""
    import torch.distributed as dist

    from engine.luna import LunaIndex
    from training.cache import ShardCache
    from training.prepcache import default_cache_root

    index = LunaIndex.open(config.data, require_candidates=config.kind != "segmentation", candidates=config.candidates,
                           candidate_positives=config.candidate_positives)
    if config.kind == "malignancy" and not index.has_malignancy:
        raise EngineError("has no annotations_with_malignancy.csv: the malignancy model needs its labels", config.data)
    split = index.split(config.val_stride)
    cache = ShardCache(Path(config.cache_dir) if config.cache_dir else default_cache_root(Path(config.data)))
    started = time.perf_counter()

    def progress(done: int, total: int, uid: str) -> None:
        events.progress(
            force=done == total, phase="cache", samples=done, samples_total=total, fraction=done / total,
            elapsed_s=round(time.perf_counter() - started, 3), series=uid,
        )

    def build(fill: bool) -> Any:
        if config.kind == "segmentation":
            from training.segmentation_data import SegmentationData

            return SegmentationData.build(
                index, split.train, split.val, cache, device, config.cache_residency, config.num_workers, progress, fill
            )
        from training.datasets import ClassificationData

        return ClassificationData.build(
            index, split.train, split.val, cache, device, config.cache_residency, config.num_workers, progress, fill
        )

    if context.distributed:  # rank 0 fills the cache once, then the other ranks read it
        data = build(fill=True) if context.is_main else None
        dist.barrier()
        if data is None:
            data = build(fill=False)
    else:
        data = build(fill=True)
    if config.kind == "segmentation":
        from training.segmentation_task import SegmentationTask

        task = SegmentationTask(config, context, device, data)
    else:
        from training.classifier_task import ClassifierTask

        task = ClassifierTask(config, context, device, data)
    facts = {"dataset_series": f"{len(split.train)} training, {len(split.val)} validation", "split": split}
    return task, facts


def run_training(
    config: TrainConfig, *, resume: bool, argv: list[str], stdout: TextIO | None = None, json_stdout: bool = True
) -> int:
    """Run one training and return the process exit status.

    Args:
        config: The settings (for a resumed run, read from its ``config.json``
            with any overrides applied).
        resume: Continue the run in ``config.run_dir``.
        argv: The command line, recorded in ``config.json``.
        stdout: Where JSON events go (default ``sys.stdout``).
        json_stdout: False to keep JSON events off the stream (``metrics.jsonl`` still gets them).
    """
    import torch.distributed as dist

    context = DistContext()
    events = EventLog(config.run_name, None, enabled=False)
    stop = StopRequest(Path(config.run_dir))
    writers: dict[str, Any] = {}
    loop: TrainingLoop | None = None
    start: RunStart | None = None
    try:
        from engine.devices import resolve_device

        context = init_distributed(resolve_device(config.device).type)
        device = training_device(config, context)
        paths = RunLayout(Path(config.run_dir))
        if context.is_main:
            start = start_run_dir(Path(config.run_dir), resume)
            paths, resume = start.layout, start.resume
            for note in start.notes:
                print(f"note: {paths.root}: {note}", file=sys.stderr)
        if context.distributed:
            dist.barrier()
            resume = resume and paths.last.is_file()
        stream = (stdout or sys.stdout) if json_stdout else None
        events = EventLog(config.run_name, paths.metrics, enabled=context.is_main, stdout=stream)
        if context.is_main:
            stop.clear_stale_file()
            _record_launch(paths, config, _launch_facts(argv, device, context, resume))
        stop.install_signal_handler()
        precision = training_precision(device, config.precision)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        elif device.type == "cpu":
            torch.set_flush_denormal(True)  # denormal floats are very slow on x86 CPUs
        task, facts = build_task(config, context, device, events)
        model, model_args, optimizer, state, extra = _model_and_state(task, config, paths, device, context, resume)
        extra.update(dataset_series=facts["dataset_series"], device=str(device), world_size=context.world_size)
        events.emit(
            "run_started",
            protocol=PROTOCOL_VERSION,
            kind=config.kind,
            run_dir=str(paths.root),
            resumed=resume,
            start_epoch=state.epoch + 1,
            epochs=config.epochs,
            device=str(device),
            precision=precision.name,
            world_size=context.world_size,
            train_series=len(facts["split"].train),
            val_series=len(facts["split"].val),
            train_samples_per_epoch=config.epoch_size,
            val_samples=task.val_size() * context.world_size,
            config=config.to_dict(),
        )
        if context.is_main:
            from training.tensorboard_log import open_writers

            writers = open_writers(paths.root)
        loop = TrainingLoop(
            task, model, model_args, optimizer, config, paths, events, writers, context, device, precision, stop, state, extra
        )
        started = time.perf_counter()
        status = loop.run()
        events.emit(
            "finished",
            status=status,
            reason=stop.reason if status == "stopped" else "",
            epoch=state.epoch,
            best_epoch=state.best_epoch,
            best_metric=config.best_metric,
            best_score=state.best_score if state.best_epoch else None,
            samples_seen=state.samples_seen,
            duration_s=round(time.perf_counter() - started, 3),
            checkpoint_last=str(paths.last),
            checkpoint_best=str(paths.best) if paths.best.exists() else None,
        )
        return EXIT_OK
    except EngineError as exc:
        _report(events, exc, loop.current_epoch if loop is not None else None)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        events.emit("error", message="interrupted", error_type="KeyboardInterrupt")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 — reported as an event and a traceback, then the status says so
        traceback.print_exc(file=sys.stderr)
        _report(events, exc, loop.current_epoch if loop is not None else None)
        return EXIT_FAILED
    finally:
        for writer in writers.values():
            writer.close()
        if start is not None:
            start.release()
        stop.restore_signal_handler()
        events.close()
        shutdown(context)


def _report(events: EventLog, exc: BaseException, epoch: int | None) -> None:
    """The ``error`` event (when the event log is open) and an ``error:`` line on stderr."""
    message = str(exc) or type(exc).__name__
    events.emit("error", message=message, error_type=type(exc).__name__, epoch=epoch)
    print(f"error: {message}", file=sys.stderr)


def _record_launch(paths: RunLayout, config: TrainConfig, facts: dict[str, Any]) -> None:
    """Write ``config.json``: the settings, this launch's facts and every earlier launch."""
    launches: list[dict[str, Any]] = []
    if paths.config.exists():
        launches = list(json.loads(paths.config.read_text(encoding="utf-8")).get("launches", []))
    launches.append(facts)
    write_config(paths.config, config, {**facts, "launches": launches})


def _launch_facts(argv: list[str], device: torch.device, context: DistContext, resume: bool) -> dict[str, Any]:
    return {
        "argv": list(argv),
        "resumed": resume,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "world_size": context.world_size,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "protocol_version": PROTOCOL_VERSION,
    }


def _model_and_state(
    task: Any, config: TrainConfig, paths: RunLayout, device: torch.device, context: DistContext, resume: bool
) -> tuple[torch.nn.Module, dict[str, Any], torch.optim.Optimizer, LoopState, dict[str, Any]]:
    """Build the model (fresh, fine-tuned or resumed), its optimizer and the loop state."""
    from engine.checkpoints import build_model, load_checkpoint

    torch.manual_seed(config.seed)
    extra: dict[str, Any] = {}
    checkpoint = load_checkpoint(paths.last, expected_kind=config.kind) if resume else None
    if checkpoint is not None:
        model_args = dict(checkpoint.model_args)
        extra = {k: v for k, v in checkpoint.metadata.items() if k in ("source", "source_id", "source_kind", "trained_children")}
    elif config.finetune:
        model_args = dict(load_checkpoint(config.finetune).model_args)
    else:
        model_args = task.model_args()
    model = build_model(config.kind, model_args)
    extra.update(task.prepare_model(model, load_weights=checkpoint is None) or {})
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model.state_dict(), strict=True)
    model.to(device=device, memory_format=task.memory_format)
    if context.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    state = LoopState()
    if checkpoint is not None:
        if checkpoint.optimizer_state is not None:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        state = LoopState.from_metadata(dict(checkpoint.metadata.get("loop_state") or {}))
    return model, model_args, optimizer, state, extra
