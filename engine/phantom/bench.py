"""Time phantom generation: ``python -m engine.phantom.bench [--repeat N]``.

Generates standard series forced to 512×512×300 (0.7 × 0.7 × 1.0 mm) and
small series, and prints the wall time of each plus the machine's load, in a
form that can be pasted into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from engine.phantom.parallel import workers
from engine.phantom.series import generate_series

STANDARD_300 = {"n_slices": 300, "spacing_xyz": (0.7, 0.7, 1.0)}


def _timed(seed: int, preset: str, **overrides) -> float:
    start = time.perf_counter()
    generate_series(seed, preset, **overrides)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(prog="python -m engine.phantom.bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="series per preset (default 3)")
    args = parser.parse_args(argv)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{workers()} render threads, python {platform.python_version()}")
    generate_series(0, "small")  # imports and caches warm
    standard = [_timed(seed, "standard", **STANDARD_300) for seed in range(1, args.repeat + 1)]
    small = [_timed(seed, "small") for seed in range(1, args.repeat + 1)]
    print("standard 512x512x300: " + ", ".join(f"{t:.2f} s" for t in standard) + f" (mean {sum(standard) / len(standard):.2f} s)")
    print("small 160x160x64:     " + ", ".join(f"{t:.2f} s" for t in small) + f" (mean {sum(small) / len(small):.2f} s)")
    if load is not None:
        after = os.getloadavg()
        print(f"load average (1 min) before {load[0]:.2f}, after {after[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
