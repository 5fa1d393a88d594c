"""Timing the detector on one CT: per-stage medians, candidates, peak memory, machine facts.

Used by ``python main.py bench``; the numbers go to ``docs/benchmarks.md``.
Timings do not depend on the weights, but the number of candidates (and so
the classification time) does, so the report says which weights ran.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from engine.io.volume import CtVolume
from engine.detection.detector import Detector

#: Stages reported, in order.
STAGES = ("load", "lung_search", "segmentation", "grouping", "classification", "malignancy", "total")


@dataclass(frozen=True)
class BenchReport:
    """One benchmark run.

    Args:
        medians_s: Median seconds per stage over the timed runs (``total`` excludes ``load``).
        runs_s: Every timed run's seconds per stage.
        cpu_medians_s: Median process CPU seconds (all threads) per detection stage;
            on a machine shared with other work, CPU seconds / cores estimates the
            wall time the stage would take alone.
        candidates: Candidates found (last run); ``nodules``: those with p_nodule >= 0.5.
        peak_rss_mb: Peak resident memory of the process during detection, MiB.
        baseline_rss_mb: Resident memory before the first detection (CT and models loaded), MiB.
        peak_gpu_mb: Peak GPU memory allocated by torch during detection, MiB (None on the CPU).
        device, precision: Where and how the models ran.
        weights: Which weights ran (demo, book, or freshly initialised).
        series: What CT was used.
        shape: Its size (index, row, col).
        segmented_slices: Slices the segmentation model ran on; ``segmented_fraction`` of voxels.
        machine: CPU model, cores, threads, GPU, Python, torch, OS, load average.
        messages: The detector's notes.
        date: ISO date and time of the run.
        backends: The runtime of each backend stage (``{"segmentation": "onnx", ...}``).
        warmup_s: Total detection seconds of each warm-up run (first-use costs: an ONNX
            export, ``torch.compile``, allocator and oneDNN plans).
    """

    medians_s: dict[str, float]
    runs_s: list[dict[str, float]]
    cpu_medians_s: dict[str, float]
    candidates: int
    nodules: int
    peak_rss_mb: float
    baseline_rss_mb: float
    peak_gpu_mb: float | None
    device: str
    precision: str
    weights: str
    series: str
    shape: tuple[int, int, int]
    segmented_slices: int
    segmented_fraction: float
    machine: dict[str, Any]
    messages: list[str] = field(default_factory=list)
    date: str = ""
    backends: dict[str, str] = field(default_factory=dict)
    warmup_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)

    def table(self) -> str:
        """Human-readable summary."""
        lines = [
            f"series: {self.series}, {self.shape[0]}×{self.shape[1]}×{self.shape[2]} (index,row,col)",
            f"weights: {self.weights}",
            f"backend: " + (", ".join(f"{k} {v}" for k, v in self.backends.items()) or "torch")
            + "".join(f"; CPU streams: {', '.join(f'{k} {v}' for k, v in streams.items())}"
                      for streams in [self.machine.get("cpu_streams")] if streams),
            f"device: {self.device} ({self.precision}); {self.machine.get('cpu', '?')}, "
            f"{self.machine.get('cpu_count', '?')} cores, torch {self.machine.get('torch', '?')}",
            f"runs: {len(self.runs_s)} timed after a warm-up; median seconds per stage:",
        ]
        lines.append(f"  {'stage':15} {'wall s':>8} {'CPU s':>8}")
        for stage in STAGES:
            if stage in self.medians_s:
                cpu = self.cpu_medians_s.get(stage)
                cpu_text = f"{cpu:8.3f}" if cpu is not None else f"{'':8}"
                lines.append(f"  {stage:15} {self.medians_s[stage]:8.3f} {cpu_text}")
        lines += [
            f"candidates: {self.candidates} ({self.nodules} with p_nodule >= 0.5)",
            f"segmented: {self.segmented_slices} slices, {100 * self.segmented_fraction:.0f}% of the voxels",
            f"peak memory: {self.peak_rss_mb:.0f} MiB resident (before detection {self.baseline_rss_mb:.0f} MiB)"
            + (f", GPU {self.peak_gpu_mb:.0f} MiB" if self.peak_gpu_mb is not None else ""),
            f"load average before/after: {self.machine.get('load_before')} / {self.machine.get('load_after')}",
        ]
        if self.warmup_s:
            lines.append("warm-up run(s), detection s (first-use costs included): " + ", ".join(f"{v:.2f}" for v in self.warmup_s))
        return "\n".join(lines)


class PeakMemory:
    """Samples the process's resident memory in a background thread (Linux ``/proc``; else ``ru_maxrss``).

    Args:
        interval: Seconds between samples.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.peak = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, resident_bytes())


def resident_bytes() -> int:
    """Current resident memory of this process in bytes (peak so far where /proc is missing)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, core count, torch threads, GPU name, versions, OS."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "os": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def benchmark_detector(
    detector: Detector,
    load: Callable[[], CtVolume],
    *,
    runs: int = 3,
    warmup: int = 1,
    weights: str = "",
    series: str = "",
) -> BenchReport:
    """Load the CT and detect ``warmup + runs`` times; report medians of the timed runs.

    Args:
        detector: The detector to time.
        load: Reads the CT (timed as the ``load`` stage each run).
        runs: Timed runs.
        warmup: Untimed runs first (allocator, oneDNN/cuDNN plans).
        weights: Description of the weights, for the report.
        series: Description of the CT, for the report.

    Returns:
        The report.
    """
    load_before = _load_average()
    device = detector.device
    ct = load()
    baseline = resident_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed: list[dict[str, float]] = []
    cpu_runs: list[dict[str, float]] = []
    warmups: list[float] = []
    result = None
    with PeakMemory() as memory:
        for index in range(warmup + runs):
            began = time.perf_counter()
            ct = load()
            load_s = time.perf_counter() - began
            result = detector.detect(ct)
            if index < warmup:
                warmups.append(time.perf_counter() - began - load_s)
            if index >= warmup:
                timed.append({"load": load_s, **{k: float(v) for k, v in result.timings.items()}})
                cpu = dict(result.extra.get("cpu_seconds", {}))
                cpu_runs.append({**cpu, "total": sum(cpu.values())})
    assert result is not None
    medians = {stage: statistics.median(run[stage] for run in timed) for stage in STAGES if stage in timed[0]}
    cpu_medians = {stage: statistics.median(run[stage] for run in cpu_runs) for stage in cpu_runs[0]}
    fraction = float(result.extra.get("segmented_voxels", 0)) / max(1, result.seg_probability.size)
    machine = machine_info(device)
    machine["load_before"] = load_before
    machine["load_after"] = _load_average()
    machine["cpu_streams"] = dict(result.extra.get("cpu_streams", {}))
    return BenchReport(
        medians_s=medians,
        runs_s=timed,
        cpu_medians_s=cpu_medians,
        candidates=len(result.candidates),
        nodules=len(result.nodules(0.5)),
        peak_rss_mb=memory.peak / 2**20,
        baseline_rss_mb=baseline / 2**20,
        peak_gpu_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        device=result.device,
        precision=result.precision,
        weights=weights,
        series=series,
        shape=ct.shape,
        segmented_slices=result.segmented_slices,
        segmented_fraction=fraction,
        machine=machine,
        messages=list(result.messages),
        date=_dt.datetime.now().isoformat(timespec="seconds"),
        backends=dict(result.extra.get("backends", {})),
        warmup_s=warmups,
    )


def side_by_side(reports: dict[str, BenchReport]) -> str:
    """Per-stage medians (wall and CPU seconds) of several reports in columns, e.g. torch vs onnx."""
    names = list(reports)
    header = f"  {'stage':15}" + "".join(f" {name + ' s':>10} {name + ' CPU':>10}" for name in names)
    if len(names) == 2:
        header += f" {'ratio':>7}"
    lines = ["per stage, " + " vs ".join(names) + " (medians; ratio of CPU seconds " + " / ".join(names) + "):", header]
    for stage in STAGES:
        if not all(stage in report.medians_s for report in reports.values()):
            continue
        row = f"  {stage:15}"
        for report in reports.values():
            cpu = report.cpu_medians_s.get(stage)
            row += f" {report.medians_s[stage]:10.3f} " + (f"{cpu:10.3f}" if cpu is not None else f"{'':10}")
        if len(names) == 2:
            a, b = (reports[n].cpu_medians_s.get(stage) for n in names)
            row += f" {a / b:6.2f}×" if a and b else ""
        lines.append(row)
    lines.append("  candidates: " + ", ".join(f"{n} {r.candidates} ({r.nodules} with p_nodule >= 0.5)" for n, r in reports.items()))
    return "\n".join(lines)


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
