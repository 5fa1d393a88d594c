"""No review lost in the viewer: each verdict is on disk when it is made, and a SIGKILL right after loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A viewer session (Qt-free state + the review keeper) that accepts finding 1, notes it,
# and kills itself with SIGKILL straight after: no exit handler, no flush, no chance to save later.
_SESSION = r"""
import os, signal, sys
import numpy as np
from app.findings import Mark
from app.review import ReviewKeeper, ReviewStore
from app.state import ViewerState
from engine.geometry import Geometry
from engine.io.volume import CtVolume
from tests.app.fakes import FakeDetector

ct = CtVolume(np.full((20, 40, 40), -800, np.int16), Geometry((0, 0, 0), (0.8, 0.8, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)), "1.2.3.4")
state = ViewerState()
keeper = ReviewKeeper(state, ReviewStore(sys.argv[1]))
state.set_volume(ct)
state.set_result(FakeDetector([((10, 20, 20), 0.95, 0.8, 12.0), ((5, 10, 10), 0.6, 0.2, 6.0)]).detect(ct))
state.set_mark(1, Mark.ACCEPTED)
state.set_note(1, "kept after a kill")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_review_survives_a_kill_of_the_app(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _SESSION, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 1, sorted(p.name for p in tmp_path.iterdir())
    saved = json.loads(files[0].read_text())
    findings = [f for detection in saved["detections"] for f in detection["findings"]]
    assert any(f.get("mark") == "accepted" and f.get("note") == "kept after a kill" for f in findings), saved
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind
