"""Run slice ranges on a few threads (numpy releases the GIL in its array work).

Results never depend on the number of threads: callers split work into fixed
chunks whose outputs are disjoint, and any randomness is seeded per chunk.
Progress is reported from the calling thread only.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

#: Upper bound on worker threads (the renderer is memory-bound beyond a few).
MAX_WORKERS = 4


def workers() -> int:
    """Threads to use: the CPU count, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run_chunks(
    n_items: int,
    chunk: int,
    work: Callable[[int, int, int], None],
    progress: Callable[[float], None] | None = None,
) -> None:
    """Call ``work(chunk_index, start, stop)`` for consecutive ranges covering ``range(n_items)``.

    Args:
        n_items: Number of items (slices).
        chunk: Items per chunk (fixed, so that per-chunk seeding is reproducible).
        work: Processes one chunk; chunks must write disjoint outputs.
        progress: Called with the fraction of chunks done.

    Raises:
        Whatever ``work`` raises (the first error, after the running chunks finish).
    """
    ranges = [(i, s, min(s + chunk, n_items)) for i, s in enumerate(range(0, n_items, chunk))]
    n_workers = workers()
    if n_workers == 1 or len(ranges) == 1:
        for k, (i, s, e) in enumerate(ranges):
            work(i, s, e)
            if progress is not None:
                progress((k + 1) / len(ranges))
        return
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        pending = {pool.submit(work, i, s, e) for i, s, e in ranges}
        done_count = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
                done_count += 1
            if progress is not None:
                progress(done_count / len(ranges))
