"""Regenerate the figures of docs/reliability.md: ``python -m tests.reliability.figures [--kills N] [--load-seconds S]``.

Runs the suite's generators (every bad input, the training options), the
fault injectors (SIGKILLs during training, a full disk during each kind of
write) and a load run on the server, then writes the figures table between
the ``<!-- figures -->`` markers of ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- figures -->", "<!-- /figures -->"


def bad_input_figures() -> tuple[int, int, list[str]]:
    """(tried, handled, names not handled) over every generated bad input."""
    from tests.reliability.bad_inputs import all_cases, check

    tried = handled = 0
    failures = []
    for case in all_cases():
        with tempfile.TemporaryDirectory() as folder:
            outcome = check(case, Path(folder))
        tried += 1
        handled += int(outcome.handled)
        if not outcome.handled:
            failures.append(case.name)
    return tried, handled, failures


def training_option_figures() -> tuple[int, int]:
    """(tried, refused with exit 2 and an ``error:`` line) over the out-of-range training options."""
    from tests.reliability.test_bad_inputs import TRAINING_OPTIONS
    from training.cli import main

    tried = refused = 0
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        for name, (argv, words) in TRAINING_OPTIONS.items():
            err = io.StringIO()
            run = [] if not argv[0].startswith("-") else ["--run-dir", str(Path(folder) / name)]
            with contextlib.redirect_stderr(err):
                rc = main(["classifier", "--device", "cpu", "--no-json", "--data", str(data), *run, *argv])
            tried += 1
            refused += int(rc == 2 and words in err.getvalue() and "Traceback" not in err.getvalue())
    return tried, refused


def disk_full_figures() -> tuple[int, int]:
    """(injected, survived): ENOSPC during a checkpoint, an export, an evaluation-cache entry and a CLI output."""
    import torch

    from engine.checkpoints import load_checkpoint, save_checkpoint
    from engine.errors import EngineError
    from engine.evaluation.cache import save_series, series_path
    from engine.export import write_luna_csv
    from engine.files import write_text_atomic
    from engine.models import NoduleClassifier
    from tests.reliability.faults import disk_full_after

    survived = 0
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model = NoduleClassifier(conv_channels=2)
        sha = save_checkpoint(folder / "last.pt", model, "classifier", model_args={"conv_channels": 2})
        torch.manual_seed(1)
        with contextlib.suppress(EngineError, OSError), disk_full_after(4096):
            save_checkpoint(folder / "last.pt", NoduleClassifier(conv_channels=2), "classifier", model_args={"conv_channels": 2})
        survived += int(load_checkpoint(folder / "last.pt").sha256 == sha)
        write_luna_csv([("1.2", 1.0, 2.0, 3.0, 0.9)], folder / "f.csv")
        before = (folder / "f.csv").read_bytes()
        with contextlib.suppress(OSError), disk_full_after(10):
            write_luna_csv([("1.2", 1.0, 2.0, 3.0, 0.5)] * 50, folder / "f.csv")
        survived += int((folder / "f.csv").read_bytes() == before)
        entry = series_path(folder, "1.2")
        entry.parent.mkdir(parents=True)
        entry.write_text("{}")
        record = type("Record", (), {"series_uid": "1.2", "to_json": lambda self: {"rows": list(range(5000))}})()
        with contextlib.suppress(OSError), disk_full_after(100):
            save_series(folder, record)
        survived += int(entry.read_text() == "{}")
        (folder / "out.json").write_text("old")
        with contextlib.suppress(OSError), disk_full_after(0):
            write_text_atomic(folder / "out.json", "new")
        survived += int((folder / "out.json").read_text() == "old")
        survived = survived if not list(folder.rglob(".*.tmp*")) else 0
    return 4, survived


def kill_figures(kills: int) -> object:
    """The :class:`~tests.reliability.faults.KillReport` of ``kills`` SIGKILLs on the tiny training run."""
    from tests.reliability.faults import kill_training
    from tests.training.conftest import write_tiny_dataset

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.environ["LUNGCAD_DATA_DIR"] = str(folder / "user-data")
        data = write_tiny_dataset(folder / "luna", n_series=4, seed=0, negatives=6).root
        return kill_training(data, folder / "run", kills=kills, seed=7)


def table(kills: int, load_seconds: float) -> str:
    """Run everything and return the Markdown figures table."""
    from tests.reliability.load import run_load

    began = time.perf_counter()
    tried, handled, failures = bad_input_figures()
    options_tried, options_refused = training_option_figures()
    disk_injected, disk_survived = disk_full_figures()
    killed = kill_figures(kills)
    with tempfile.TemporaryDirectory() as name:
        load = run_load(Path(name), seconds=load_seconds, clients=8, seed=0)
    errors = sum(n for status, n in load.by_status.items() if status >= 500 and status != 503) + load.by_status.get(0, 0)
    rows = [
        ("bad inputs (CT, DICOM, CSV, checkpoints)", f"{tried} tried", f"{handled} handled"
         + (f" (not: {', '.join(failures)})" if failures else "")),
        ("training options out of range", f"{options_tried} tried", f"{options_refused} refused, exit 2"),
        ("SIGKILL during training", f"{killed.kills} kills ({killed.during_writes} while a checkpoint was being written, "
         f"{killed.with_checkpoint} after the first checkpoint)",
         f"{killed.checkpoints_checked} best/last loads after kills, all loadable; {killed.resumes} resumes from last.pt; "
         "the final run completed; " + ("no problem" if not killed.problems else f"problems: {killed.problems}")),
        ("full disk (checkpoint, export, evaluation cache, CLI output)", f"{disk_injected} injected",
         f"{disk_survived} left the previous file intact"),
        ("server load (127.0.0.1)", f"{load.requests} requests in {load_seconds:.0f} s, 8 clients, "
         f"~55 % malformed/oversized/unauthorised",
         f"answers by status {dict(sorted(load.by_status.items()))} (0: no answer within 30 s); "
         f"unexpected {len(load.unexpected)}{' (' + ', '.join(load.unexpected) + ')' if load.unexpected else ''}; "
         f"server errors {errors}; classify p95 {load.p95_ms:.0f} ms; RSS {load.rss_start_kb // 1024} → "
         f"{load.rss_end_kb // 1024} MiB; temp files left {len(load.leftovers)}; alive {load.alive}"),
    ]
    lines = ["| what | tried | outcome |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("")
    lines.append(f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} CPU cores "
                 f"(Python {platform.python_version()}), in {time.perf_counter() - began:.0f} s, by "
                 f"`python -m tests.reliability.figures --kills {kills} --load-seconds {load_seconds:g}`.")
    return "\n".join(lines)


def write_figures(text: str, doc: Path = DOC) -> None:
    """Put ``text`` between the figures markers of ``doc``."""
    from engine.files import write_text_atomic

    content = doc.read_text(encoding="utf-8")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_text_atomic(doc, f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    """Measure and write the figures; prints the table."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs during training (default 20)")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="length of the server load run (default 20)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    text = table(args.kills, args.load_seconds)
    print(text)
    if not args.no_write:
        write_figures(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
