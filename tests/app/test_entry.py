"""``python main.py [PATH]`` opens the viewer without importing torch; ``gui-bench`` is registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer
import app.main_window as mw

def fake_exec(self=None):
    window = [w for w in QApplication.topLevelWidgets() if isinstance(w, mw.MainWindow)][0]
    deadline = __import__('time').monotonic() + 20
    while window.state.volume is None and __import__('time').monotonic() < deadline:
        QApplication.processEvents()
    QApplication.processEvents()
    print('volume', window.state.volume.shape if window.state.volume is not None else None)
    print('torch', 'torch' in sys.modules)
    window.close()
    return 0

QApplication.exec = fake_exec
from app.main import run_gui
sys.exit(run_gui([sys.argv[1]]))
"""


def test_gui_opens_a_path_without_importing_torch(write_volume, tmp_path) -> None:
    path = write_volume("entry.mhd")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LUNGCAD_SETTINGS=str(tmp_path / "s.ini"))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "volume (24, 48, 40)" in done.stdout
    assert "torch False" in done.stdout


def test_gui_bench_is_a_registered_command() -> None:
    sys.path.insert(0, str(REPO))
    import main

    assert main.COMMANDS.get("gui-bench") == "app.bench"
    import app.bench as bench

    assert bench.DESCRIPTION and callable(bench.add_arguments) and callable(bench.run)
