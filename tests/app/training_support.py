"""Helpers for the Training panel's tests: a fake trainer script, a cheap dataset folder, a panel factory.

The fake trainer speaks the training CLI's protocol (docs/training-protocol.md)
well enough for the panel: it reads ``--run-dir`` and ``--epochs`` from its
arguments, writes ``config.json`` and ``metrics.jsonl``, prints JSON lines,
and behaves as ``$FAKE_TRAINER_MODE`` says: ``ok``, ``garbage``, ``partial``,
``crash``, ``killed``, ``oom``, ``slow`` (honours the STOP file) or
``stubborn`` (ignores STOP and SIGTERM).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FAKE_TRAINER = r'''
import json, os, signal, sys, time
from pathlib import Path

args = sys.argv[1:]
run_dir = Path(args[args.index("--run-dir") + 1])
epochs = int(args[args.index("--epochs") + 1])
kind, name = args[0], args[1]
mode = os.environ.get("FAKE_TRAINER_MODE", "ok")
(run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
(run_dir / "config.json").write_text(json.dumps({"config": {"kind": kind, "run_name": name, "epochs": epochs}}))
metrics = (run_dir / "metrics.jsonl").open("a")
out = sys.stdout.buffer


def line(event, **fields):
    return json.dumps({"event": event, "run": name, "time": time.time(), **fields})


def emit(event, **fields):
    text = line(event, **fields)
    metrics.write(text + "\n")
    metrics.flush()
    out.write(text.encode() + b"\n")
    out.flush()


def started():
    emit("run_started", protocol=1, kind=kind, run_dir=str(run_dir), resumed=False, start_epoch=1, epochs=epochs,
         device="cpu", precision="float32", world_size=1, train_series=3, val_series=1, train_samples_per_epoch=8,
         val_samples=4, config={"validation_cadence": 1, "best_metric": "recall"})


def epoch(k, partial=False):
    emit("progress", phase="train", epoch=k, epochs=epochs, batch=1, batches=2, samples=4, samples_total=8,
         fraction=0.5, elapsed_s=0.1, eta_s=0.1, samples_per_s=40.0)
    for phase, loss in (("train", 1.0 / k), ("val", 1.2 / k)):
        emit("epoch", epoch=k, epochs=epochs, phase=phase, partial=partial, samples_seen=8 * k,
             metrics={"loss": loss, "precision": 0.5, "recall": 0.1 * k, "f1": 0.2, "dice": 0.3, "samples": 8.0})
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"fake")
    emit("checkpoint", epoch=k, which="last", path=str(run_dir / "checkpoints" / "last.pt"), sha256="ab" * 32, complete=not partial)
    if not partial:
        (run_dir / "checkpoints" / "best.pt").write_bytes(b"fake")
        emit("checkpoint", epoch=k, which="best", path=str(run_dir / "checkpoints" / "best.pt"), sha256="cd" * 32,
             metric="recall", score=0.1 * k)


def finished(status="completed", reason="", done=epochs):
    emit("finished", status=status, reason=reason, epoch=done, best_epoch=done, best_metric="recall",
         best_score=0.1 * done, samples_seen=8 * done, duration_s=0.5, checkpoint_last=str(run_dir / "checkpoints" / "last.pt"),
         checkpoint_best=str(run_dir / "checkpoints" / "best.pt"))


if mode == "garbage":
    out.write(b"hello from a library that prints\n")
    out.write(b"{not json at all\n")
    out.write(b"[1, 2, 3]\n")
    out.write(b'{"event": "epoch", "epoch": "one", "phase": "train", "metrics": {}}\n')
    out.write(b"\xff\xfe not utf-8\n")
    out.flush()
if mode == "partial":
    text = line("run_started", protocol=1, kind=kind, run_dir=str(run_dir), resumed=False, start_epoch=1,
                epochs=epochs, device="cpu", config={"validation_cadence": 1})
    out.write(text[:25].encode())
    out.flush()
    time.sleep(0.6)
    out.write(text[25:].encode() + b"\n")
    out.flush()
else:
    started()
if mode == "crash":
    epoch(1)
    raise RuntimeError("the fake trainer fell over")
if mode == "killed":
    epoch(1)
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "oom":
    message = "CUDA out of memory. Tried to allocate 2.00 GiB"
    emit("error", message=message, error_type="OutOfMemoryError", epoch=1)
    print("error: " + message, file=sys.stderr, flush=True)
    sys.exit(1)
if mode in ("slow", "stubborn"):
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    epoch(1)
    print("E1 summary on stderr", file=sys.stderr, flush=True)
    while True:
        if mode == "slow" and (run_dir / "STOP").exists():
            epoch(2, partial=True)
            finished("stopped", "stop file found", done=1)
            sys.exit(0)
        time.sleep(0.05)
for k in range(1, epochs + 1):
    epoch(k)
    print(f"E{k} summary on stderr", file=sys.stderr, flush=True)
if mode == "partial":
    out.write(line("finished", status="completed", reason="", epoch=epochs, best_epoch=epochs, best_metric="recall",
                   best_score=0.1, checkpoint_best=str(run_dir / "checkpoints" / "best.pt")).encode())
    out.flush()  # no newline at the very end: the reader must still take it
else:
    finished()
'''


def write_fake_trainer(folder: Path) -> Path:
    """Write the fake trainer script; returns its path."""
    path = Path(folder) / "fake_trainer.py"
    path.write_text(FAKE_TRAINER, encoding="utf-8")
    return path


def write_luna_folder(folder: Path, candidates: bool = True) -> Path:
    """A LUNA16-format folder that passes the panel's check without real images (the fake trainer reads nothing)."""
    folder = Path(folder)
    (folder / "subset0").mkdir(parents=True, exist_ok=True)
    (folder / "subset0" / "1.2.3.mhd").write_text("ObjectType = Image\n", encoding="utf-8")
    (folder / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3,6\n", encoding="utf-8")
    if candidates:
        (folder / "candidates.csv").write_text("seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,2,3,1\n", encoding="utf-8")
    return folder


def fake_process(script: Path, stop_timeout_ms: int = 5000, kill_timeout_ms: int = 1000) -> Any:
    """A ``TrainingProcess`` that runs the fake trainer instead of ``python -m training``."""
    from app.training.process import TrainingProcess

    return TrainingProcess(
        program=sys.executable, prefix_args=[str(script)], stop_timeout_ms=stop_timeout_ms, kill_timeout_ms=kill_timeout_ms
    )


def write_events(path: Path, events: list[dict[str, Any]], torn_tail: str = "") -> None:
    """Write events as ``metrics.jsonl`` lines, optionally with an unfinished last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(e) + "\n" for e in events) + torn_tail
    path.write_text(text, encoding="utf-8")
