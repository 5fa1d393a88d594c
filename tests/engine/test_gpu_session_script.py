"""The prepared GPU check (scripts/gpu_session.sh) parses, and every option it passes exists.

The script only runs on a lent GPU machine (and in its CPU smoke mode, see its
header); these checks catch a renamed option before a scarce GPU session does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_session.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def _help(*command: str) -> str:
    root = SCRIPT.parents[1]
    done = subprocess.run([sys.executable, *command, "--help"], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def test_every_option_it_passes_exists():
    text = SCRIPT.read_text()
    bench_options = set(re.findall(r"(--[a-z][a-z0-9-]+)", _help("main.py", "bench")))
    train_options = set(re.findall(r"(--[a-z][a-z0-9-]+)", _help("-m", "training", "bench")))
    bench_lines = [line for line in text.splitlines() if "BENCH" in line and not line.lstrip().startswith("#")]
    used_bench = set(re.findall(r"(--[a-z][a-z0-9-]+)", " ".join(bench_lines)))
    train_line = next(line for line in text.splitlines() if "-m training bench" in line)
    used_train = set(re.findall(r"(--[a-z][a-z0-9-]+)", train_line))
    assert used_bench and used_bench <= bench_options, used_bench - bench_options
    assert used_train and used_train <= train_options, used_train - train_options
