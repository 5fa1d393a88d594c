"""Fault injection helpers: a training run killed with SIGKILL at random moments, writes failing with ENOSPC.

Used by ``test_faults.py`` and by ``python -m tests.reliability.figures``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT

#: The tiny run every kill cycle trains (a few seconds of CPU per epoch).
EPOCHS = 2


@dataclass
class KillReport:
    """What a series of kills did.

    Args:
        kills: SIGKILLs delivered (a run that ended before its moment counts as not killed).
        with_checkpoint: Kills after which ``last.pt`` existed (the others came before the first epoch ended).
        during_writes: Of those, how many landed while a checkpoint's temporary file existed.
        checkpoints_checked: ``best``/``last`` files loaded after a kill.
        resumes: Launches that continued from ``last.pt`` (start epoch > 1).
        problems: Anything that went wrong (empty when every check held).
    """

    kills: int = 0
    with_checkpoint: int = 0
    during_writes: int = 0
    checkpoints_checked: int = 0
    resumes: int = 0
    problems: list[str] = field(default_factory=list)


def training_argv(data: Path, run_dir: Path) -> list[str]:
    """A new start of the tiny classifier run."""
    return [
        "classifier", "--data", str(data), "--run-dir", str(run_dir), "--epochs", str(EPOCHS), "--epoch-size", "16",
        "--batch-size", "8", "--val-stride", "2", "--validation-cadence", "1", "--device", "cpu", "--no-json",
        "--precision", "float32", "--seed", "0",
    ]


def _launch(argv: list[str], slow_writes: float) -> subprocess.Popen:
    env = {**os.environ, "RELIABILITY_SLOW_WRITES": str(slow_writes), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.train_child", *argv],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _temporaries(run_dir: Path) -> list[Path]:
    return list((run_dir / "checkpoints").glob(".*.tmp*")) if (run_dir / "checkpoints").is_dir() else []


def _wait_and_kill(process: subprocess.Popen, run_dir: Path, rng: random.Random, in_write: bool, timeout: float) -> tuple[bool, bool]:
    """Kill ``process`` at a random moment of its training, or inside a checkpoint write; returns (killed, during a write).

    A random moment is 0–6 s after this launch's ``run_started`` event (so the
    kills spread over cache loading, epochs, validation and checkpointing); a
    kill in a write comes 0–0.8 s after a temporary checkpoint file appears
    (writes wait 0.4 s before their rename, so it lands before or after it).
    """
    deadline = time.monotonic() + timeout
    starts = len(_started_epochs(run_dir))
    moment = None
    while time.monotonic() < deadline and process.poll() is None:
        if in_write:
            if _temporaries(run_dir):
                time.sleep(rng.uniform(0.0, 0.8))
                writing = bool(_temporaries(run_dir))
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True, writing
        elif moment is None:
            if len(_started_epochs(run_dir)) > starts:
                moment = time.monotonic() + rng.uniform(0.0, 6.0)
        elif time.monotonic() >= moment:
            writing = bool(_temporaries(run_dir))
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True, writing
        time.sleep(0.02)
    if process.poll() is None:
        process.kill()
        process.wait()
        return True, False
    return False, False


def _check_checkpoints(run_dir: Path, report: KillReport) -> int:
    """Load ``best`` and ``last`` (those that exist); returns the epoch of ``last`` (0 without one)."""
    from engine.checkpoints import load_checkpoint
    from engine.errors import EngineError

    epoch = 0
    for name in ("best", "last"):
        path = run_dir / "checkpoints" / f"{name}.pt"
        if not path.exists():
            continue
        try:
            checkpoint = load_checkpoint(path, expected_kind="classifier")
        except EngineError as exc:
            report.problems.append(f"{name}.pt unloadable after a kill: {exc}")
            continue
        report.checkpoints_checked += 1
        if name == "last":
            epoch = int(checkpoint.metadata.get("epoch", 0))
    return epoch


def _next_argv(data: Path, run_dir: Path) -> list[str]:
    if (run_dir / "config.json").is_file():
        return ["classifier", "--resume", str(run_dir), "--no-json"]
    return training_argv(data, run_dir)


def _started_epochs(run_dir: Path) -> list[int]:
    """``start_epoch`` of every ``run_started`` event (a line cut by a kill is skipped, as the app's reader does)."""
    found = []
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "run_started":
            found.append(int(event["start_epoch"]))
    return found


def _count_resume(run_dir: Path, starts_before: int, last_epoch: int, report: KillReport) -> None:
    """After a launch: a run with ``last.pt`` at ``last_epoch`` must have started at the next epoch."""
    starts = _started_epochs(run_dir)
    if len(starts) <= starts_before or not last_epoch:
        return
    if starts[-1] != last_epoch + 1:
        report.problems.append(f"a resume from epoch {last_epoch} started at epoch {starts[-1]}")
    else:
        report.resumes += 1


def kill_training(data: Path, run_dir: Path, kills: int, seed: int = 0, timeout: float = 240.0) -> KillReport:
    """Train the tiny run, SIGKILL it ``kills`` times (every other kill inside a checkpoint write), then finish it.

    After every kill, ``best`` and ``last`` must load; the next launch resumes
    (``--resume``; a run without a checkpoint starts again in its folder); the
    last launch must finish with both checkpoints loadable at the planned epoch
    and no temporary file left.
    """
    rng = random.Random(seed)
    report = KillReport()
    for attempt in range(kills):
        last_epoch = _check_checkpoints(run_dir, report) if run_dir.exists() else 0
        in_write = attempt % 2 == 1
        if last_epoch >= EPOCHS:  # finished before we could kill it enough times: start a new run in a new folder
            run_dir = run_dir.with_name(f"{run_dir.name}-{attempt}")
            last_epoch = 0
        starts_before = len(_started_epochs(run_dir))
        process = _launch(_next_argv(data, run_dir), slow_writes=0.4 if in_write else 0.0)
        killed, during_write = _wait_and_kill(process, run_dir, rng, in_write, timeout)
        _count_resume(run_dir, starts_before, last_epoch, report)
        report.kills += int(killed)
        report.during_writes += int(during_write)
        if not killed and process.returncode != 0:
            report.problems.append(f"launch {attempt} failed (status {process.returncode}): {process.stderr.read()[-400:]}")
        process.stderr.close()
        if _check_checkpoints(run_dir, report) and killed:
            report.with_checkpoint += 1
    last_epoch = _check_checkpoints(run_dir, report)
    starts_before = len(_started_epochs(run_dir))
    final = _launch(_next_argv(data, run_dir), slow_writes=0.0)
    try:
        _, err = final.communicate(timeout=4 * timeout)
    except subprocess.TimeoutExpired:
        final.kill()
        _, err = final.communicate()
        report.problems.append(f"the final launch did not finish within {4 * timeout:.0f} s")
    if final.returncode != 0:
        report.problems.append(f"the final launch failed (status {final.returncode}): {err[-600:]}")
    _count_resume(run_dir, starts_before, last_epoch, report)
    if _check_checkpoints(run_dir, report) != EPOCHS:
        report.problems.append(f"last.pt does not hold epoch {EPOCHS} after the final launch")
    if not (run_dir / "checkpoints" / "best.pt").is_file():
        report.problems.append("no best.pt after the final launch")
    if _temporaries(run_dir):
        report.problems.append(f"temporary files left: {_temporaries(run_dir)}")
    return report


# --- a full disk -------------------------------------------------------------------------
@contextmanager
def disk_full_after(limit_bytes: int) -> Iterator[None]:
    """Make every write through :mod:`engine.files` fail with ENOSPC once ``limit_bytes`` have been written.

    The file objects the atomic writer opens are wrapped, so ``torch.save``,
    ``csv``, ``json.dump`` and plain ``write`` calls all see the full disk.
    """
    import engine.files as files

    original = os.fdopen
    written = [0]

    class FullDiskFile:
        def __init__(self, stream) -> None:
            self._stream = stream

        def write(self, data) -> int:
            written[0] += len(data)
            if written[0] > limit_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._stream.write(data)

        def __getattr__(self, name):
            return getattr(self._stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self._stream.close()

    def fdopen(descriptor, *args, **kwargs):
        return FullDiskFile(original(descriptor, *args, **kwargs))

    files.os.fdopen = fdopen  # engine.files opens its temporary files with os.fdopen
    try:
        yield
    finally:
        files.os.fdopen = original
