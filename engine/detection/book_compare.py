"""Ours against the book-style pipeline on the same CT and weights (``python main.py bench --compare-book``).

The book-style pipeline (:mod:`engine.detection.book_style`) runs on copies of
the detector's own models in the default memory layout, so the ratio is the
pipeline's, not the weights' or the layout's. Each stage is timed in wall and
process CPU seconds (all threads): on a machine shared with other work the CPU
seconds are the steadier measure. Our classification is compared with the
book's classification, which runs the nodule and the malignancy model on each
batch, so ours counts both of those stages.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from engine.detection.book_style import classify_book_style, group_book_style, segment_book_style
from engine.io.volume import CtVolume

#: Compared stages: the name in the comparison → the stages of our report it sums.
OUR_STAGES: dict[str, tuple[str, ...]] = {
    "segmentation": ("lung_search", "segmentation"),
    "grouping": ("grouping",),
    "classification": ("classification", "malignancy"),
    "total": ("total",),
}


@dataclass(frozen=True)
class BookComparison:
    """One book-style run next to our medians.

    Args:
        book_s: Book-style wall seconds per compared stage (one run).
        book_cpu_s: Its process CPU seconds per stage.
        ours_s: Our median wall seconds per compared stage (segmentation includes the lung search).
        ours_cpu_s: Our median CPU seconds per stage.
        ratio: ``book_s / ours_s`` per stage.
        cpu_ratio: ``book_cpu_s / ours_cpu_s`` per stage.
        book_candidates: Candidates the book-style pipeline found; ``book_nodules``: with p_nodule >= 0.5.
        our_candidates: Ours (with our settings, e.g. the lung region); ``our_nodules`` likewise.
        ours_backend: Our runtime per backend stage, e.g. ``{"segmentation": "onnx", ...}``.
    """

    book_s: dict[str, float]
    book_cpu_s: dict[str, float]
    ours_s: dict[str, float]
    ours_cpu_s: dict[str, float]
    ratio: dict[str, float]
    cpu_ratio: dict[str, float]
    book_candidates: int
    book_nodules: int
    our_candidates: int
    our_nodules: int
    ours_backend: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)

    def table(self) -> str:
        """Human-readable side-by-side table."""
        lines = [
            "book-style pipeline vs ours (same CT and weights; book: one run, ours: medians; ours runs "
            + (", ".join(f"{k} {v}" for k, v in self.ours_backend.items()) or "torch") + "):",
            f"  {'stage':15} {'book s':>8} {'ours s':>8} {'ratio':>7} {'book CPU':>9} {'ours CPU':>9} {'ratio':>7}",
        ]
        for stage in OUR_STAGES:
            lines.append(
                f"  {stage:15} {self.book_s[stage]:8.2f} {self.ours_s[stage]:8.2f} {self.ratio[stage]:6.1f}× "
                f"{self.book_cpu_s[stage]:9.2f} {self.ours_cpu_s[stage]:9.2f} {self.cpu_ratio[stage]:6.1f}×"
            )
        lines.append(
            f"  candidates: book {self.book_candidates} ({self.book_nodules} with p_nodule >= 0.5), "
            f"ours {self.our_candidates} ({self.our_nodules})"
        )
        return "\n".join(lines)


def _timed(work: Callable[[], Any], wall: dict[str, float], cpu: dict[str, float], stage: str) -> Any:
    began, cpu_began = time.perf_counter(), time.process_time()
    value = work()
    wall[stage] = time.perf_counter() - began
    cpu[stage] = time.process_time() - cpu_began
    return value


def run_book_style(
    ct: CtVolume, models: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module], device: torch.device, threshold: float
) -> tuple[dict[str, float], dict[str, float], int, int]:
    """Run the book-style pipeline once on copies of ``models``; wall and CPU seconds per stage, candidates, nodules."""
    segmentation, classifier, malignancy = (
        copy.deepcopy(m).to(device=device, memory_format=torch.contiguous_format).eval() for m in models
    )
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    probability = _timed(lambda: segment_book_style(ct, segmentation, device), wall, cpu, "segmentation")
    centers = _timed(lambda: group_book_style(ct, probability, threshold), wall, cpu, "grouping")
    del probability
    p_nodule, _ = _timed(lambda: classify_book_style(ct, centers, classifier, malignancy, device), wall, cpu, "classification")
    wall["total"] = sum(wall.values())
    cpu["total"] = sum(cpu.values())
    return wall, cpu, int(len(centers)), int((p_nodule >= 0.5).sum())


def compare_with_book(
    book: tuple[dict[str, float], dict[str, float], int, int],
    medians_s: dict[str, float],
    cpu_medians_s: dict[str, float],
    candidates: int,
    nodules: int,
    backends: dict[str, str],
) -> BookComparison:
    """Set one book-style run (:func:`run_book_style`) beside one of our bench reports.

    Args:
        book: What :func:`run_book_style` returned.
        medians_s: Our median wall seconds per stage (:class:`~engine.detection.benchmark.BenchReport`).
        cpu_medians_s: Our median CPU seconds per stage.
        candidates: Our candidates; ``nodules``: with p_nodule >= 0.5.
        backends: Our runtime per backend stage.
    """
    book_s, book_cpu, book_candidates, book_nodules = book
    ours = {stage: sum(medians_s.get(part, 0.0) for part in parts) for stage, parts in OUR_STAGES.items()}
    ours_cpu = {stage: sum(cpu_medians_s.get(part, 0.0) for part in parts) for stage, parts in OUR_STAGES.items()}
    return BookComparison(
        book_s=book_s,
        book_cpu_s=book_cpu,
        ours_s=ours,
        ours_cpu_s=ours_cpu,
        ratio={stage: book_s[stage] / max(ours[stage], 1e-9) for stage in OUR_STAGES},
        cpu_ratio={stage: book_cpu[stage] / max(ours_cpu[stage], 1e-9) for stage in OUR_STAGES},
        book_candidates=book_candidates,
        book_nodules=book_nodules,
        our_candidates=candidates,
        our_nodules=nodules,
        ours_backend=dict(backends),
    )
