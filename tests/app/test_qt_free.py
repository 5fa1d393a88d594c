"""The viewer's model and pure functions import and work without Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from app.readout import readout_at
from engine.geometry import irc_to_xyz

REPO = Path(__file__).resolve().parents[2]

_BLOCK_QT = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'torch'):
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, _Block())
import app.state, app.planes, app.findings, app.windowing, app.readout, app.overlay, app.bench
import app.training.lines, app.training.record, app.training.run_folders, app.training.request, app.model_choice
print('ok')
"""


def test_model_modules_import_without_qt_or_torch() -> None:
    done = subprocess.run([sys.executable, "-c", _BLOCK_QT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_readout_matches_the_volume(make_ct) -> None:
    ct = make_ct(shape=(6, 10, 12), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1), seed=3)
    r = readout_at(ct, (4, 5, 6))
    assert r.hu == int(ct.hu[4, 5, 6])
    np.testing.assert_allclose(r.xyz, irc_to_xyz(ct.geometry, (4, 5, 6)))
    assert f"HU {r.hu:>5d}" in r.text() and "LPS mm" in r.text() and "4, 5, 6" in r.text()
    assert readout_at(ct, (6, 0, 0)) is None and readout_at(ct, (0, -1, 0)) is None
