"""examples/cpp: built with CMake against the torch wheel's LibTorch, it gives Python's p_nodule (≤ 1e-5)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "cpp"
#: Generous: LibTorch's headers take about a minute on two cores.
BUILD_TIMEOUT_S = 1200


def _toolchain() -> tuple[str, Path]:
    """``(cmake, LibTorch CMake prefix)``, or skip with the reason."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: the C++ example cannot be built")
    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler (c++, g++ or clang++) is installed")
    if shutil.which("make") is None and shutil.which("ninja") is None:
        pytest.skip("neither make nor ninja is installed: CMake has nothing to build with")
    prefix = Path(torch.utils.cmake_prefix_path)
    if not (prefix / "Torch" / "TorchConfig.cmake").is_file():
        pytest.skip(f"this torch installation ships no LibTorch CMake config ({prefix / 'Torch'})")
    return cmake, prefix


def _phantom_crops() -> np.ndarray:
    """Raw HU float32 crops ``(N, 32, 48, 48)``: phantom nodules and other places, and one far outside [-1000, 1000]."""
    from engine.crops import CLASSIFIER_CROP, gather_crops
    from engine.phantom import generate_series

    ct, truth = generate_series(11, preset="small", n_nodules=2)
    centres = [n.center_irc for n in truth.nodules] + [tuple(s // 2 for s in ct.shape), (5.0, 20.0, 30.0)]
    crops = gather_crops(ct.hu, np.asarray(centres, dtype=np.float64), CLASSIFIER_CROP).astype(np.float32)
    wild = np.random.default_rng(3).uniform(-3000, 3000, (1, *CLASSIFIER_CROP)).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([crops, wild]))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_cpp_example_matches_python(tmp_path: Path) -> None:
    from engine.crops import classifier_input
    from engine.deploy.bundle import ExportRequest, export_models
    from engine.deploy.manifest import read_manifest

    cmake, prefix = _toolchain()
    out = tmp_path / "export"
    export_models(ExportRequest(out_dir=out, formats=("torchscript",), kinds=("classifier",)), log=lambda line: None)
    assert read_manifest(out)["models"]["classifier"]["interface"]["hu_clip"] == [-1000, 1000]
    crops = _phantom_crops()
    crop_file = tmp_path / "crops.f32"
    crop_file.write_bytes(crops.astype("<f4").tobytes())

    build = tmp_path / "build"
    began = time.perf_counter()
    subprocess.run([cmake, "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True, text=True,
                   timeout=BUILD_TIMEOUT_S)
    print(f"C++ example built in {time.perf_counter() - began:.0f} s")
    program = build / "classify"
    assert program.is_file()

    ran = subprocess.run([str(program), str(out / "classifier.ts"), str(crop_file), str(out / "manifest.json")],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    from_cpp = np.array([float(line) for line in ran.stdout.split()])
    assert "HU clipped to [-1000, 1000]" in ran.stderr

    module = torch.jit.load(str(out / "classifier.ts"), map_location="cpu")
    with torch.no_grad():
        from_python = module(classifier_input(torch.from_numpy(crops)))[1][:, 1].double().numpy()
    assert from_cpp.shape == (len(crops),)
    np.testing.assert_allclose(from_cpp, from_python, rtol=0, atol=1e-5)
    assert np.ptp(from_python) > 0  # the crops really differ for the model

    short = tmp_path / "short.f32"
    short.write_bytes(crops[:1].tobytes()[:-4])
    refused = subprocess.run([str(program), str(out / "classifier.ts"), str(short)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "not a whole number of 32x48x48" in refused.stderr
    usage = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage:" in usage.stderr
