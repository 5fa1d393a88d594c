"""CPU latency per model: eager torch vs ONNX Runtime on the exported files (for ``python main.py bench``).

Segmentation on 512×512 context stacks (batch 2, the detector's CPU batch);
classifier and malignancy on crops at batch 8 and 32. Median of a few timed
runs after a warm-up; inputs are random HU values (latency does not depend on them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine.checkpoints import load_checkpoint
from engine.deploy.onnx_runtime import load_onnx_model

#: (kind, input shape) of each timed case.
CASES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("segmentation", (2, 7, 512, 512)),
    ("classifier", (8, 1, 32, 48, 48)),
    ("classifier", (32, 1, 32, 48, 48)),
    ("malignancy", (8, 1, 32, 48, 48)),
    ("malignancy", (32, 1, 32, 48, 48)),
)


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``call()`` in ms, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000.0)
    return float(np.median(times))


def backend_latency(export_dir: str | Path, repeats: int = 5, threads: int | None = None) -> list[dict[str, Any]]:
    """Time torch (the manifest's source checkpoints) and ONNX Runtime (the exported files) per case.

    Args:
        export_dir: A folder written by ``python main.py export`` (with ONNX files).
        repeats: Timed runs per case.
        threads: CPU threads for both (None: each library's default).

    Returns:
        One row per case: ``kind``, ``shape``, ``torch_ms``, ``onnx_ms``, ``speedup`` (torch / onnx).
    """
    from engine.deploy.manifest import read_manifest

    folder = Path(export_dir)
    manifest = read_manifest(folder)
    if threads:
        torch.set_num_threads(threads)
    rows = []
    rng = np.random.default_rng(0)
    cache: dict[str, tuple[Any, Any]] = {}
    for kind, shape in CASES:
        entry = manifest["models"].get(kind)
        if entry is None or "onnx" not in entry["files"]:
            continue
        if kind not in cache:
            eager = load_checkpoint(entry["source"]["path"], expected_kind=kind).model.eval()
            cache[kind] = (eager, load_onnx_model(folder / entry["files"]["onnx"]["file"], kind, threads=threads))
        eager, onnx_model = cache[kind]
        batch = rng.uniform(-1000, 1000, shape).astype(np.float32)
        tensor = torch.from_numpy(batch)

        def run_torch() -> None:
            with torch.inference_mode():
                eager(tensor)

        torch_ms = median_ms(run_torch, repeats)
        onnx_ms = median_ms(lambda: onnx_model(batch), repeats)
        rows.append({"kind": kind, "shape": list(shape), "torch_ms": round(torch_ms, 2), "onnx_ms": round(onnx_ms, 2),
                     "speedup": round(torch_ms / onnx_ms, 2)})
    return rows


def format_latency(rows: list[dict[str, Any]]) -> str:
    """The rows as a small table."""
    lines = [f"{'model':12} {'input':>20} {'torch ms':>9} {'onnx ms':>9} {'torch/onnx':>10}"]
    for row in rows:
        shape = "×".join(map(str, row["shape"]))
        lines.append(f"{row['kind']:12} {shape:>20} {row['torch_ms']:9.1f} {row['onnx_ms']:9.1f} {row['speedup']:10.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(format_latency(backend_latency(sys.argv[1] if len(sys.argv) > 1 else "export")))
