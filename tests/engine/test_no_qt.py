"""engine/ and training/ never import Qt: import every module with Qt made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import importlib, importlib.abc, pkgutil, sys

class BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'qtpy', 'shiboken6'):
            raise ImportError(f'Qt import blocked: {name}')
        return None

sys.meta_path.insert(0, BlockQt())
count = 0
for package_name in ('engine', 'training'):
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(package.__path__, package_name + '.'):
        if info.name.endswith('__main__'):
            continue
        importlib.import_module(info.name)
        count += 1
print(count)
"""


def test_engine_and_training_import_without_qt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) >= 5


def test_no_qt_import_statements_in_sources() -> None:
    offenders = []
    for package in ("engine", "training"):
        for path in (REPO / package).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                stripped = line.strip()
                if stripped.startswith(("import ", "from ")) and any(
                    q in stripped.split()[1] for q in ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "qtpy")
                ):
                    offenders.append(f"{path.relative_to(REPO)}: {stripped}")
    assert not offenders, offenders
