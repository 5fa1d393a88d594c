"""``python main.py info``: prints the facts of a volume; errors exit 2 with the file named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import main

REPO = Path(__file__).resolve().parents[2]


def test_info_prints_geometry(tmp_path: Path, capsys) -> None:
    image = sitk.GetImageFromArray(np.arange(-1000, -1000 + 3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5))
    image.SetSpacing((0.5, 0.6, 2.0))
    image.SetOrigin((-10.0, 20.0, -30.0))
    sitk.WriteImage(image, str(tmp_path / "1.2.3.mhd"))
    assert main.main(["info", str(tmp_path / "1.2.3.mhd")]) == 0
    out = capsys.readouterr().out
    assert "5 x 4 x 3 voxels" in out
    assert "0.5 x 0.6 x 2 mm" in out
    assert "(-10.000, 20.000, -30.000) LPS mm" in out
    assert "-1000 .. -941" in out
    assert "modality:    CT" in out and "series uid:  1.2.3" in out


def test_info_error_names_file(tmp_path: Path, capsys) -> None:
    assert main.main(["info", str(tmp_path / "missing.nii")]) == 2
    assert "missing.nii: no such file" in capsys.readouterr().err


def test_help_lists_commands() -> None:
    done = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "info" in done.stdout and "Not for clinical use" in done.stdout
