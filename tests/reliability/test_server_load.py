"""Load on the detection server (``main.py serve``) on 127.0.0.1: it keeps answering, memory stays bounded, no temp files leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.load import run_load

#: RSS the server may grow by during a load run (glibc arenas and caches settle within this).
RSS_GROWTH_LIMIT_KB = 150_000


def _check(report) -> None:
    assert report.alive, "the server stopped answering"
    assert not report.unexpected, report.unexpected[:10]
    assert report.by_status.get(200, 0) > 0 and report.by_status.get(0, 0) == 0, report.by_status
    assert report.rss_end_kb - report.rss_start_kb < RSS_GROWTH_LIMIT_KB, (report.rss_start_kb, report.rss_end_kb)
    assert report.leftovers == [], report.leftovers


def test_the_server_holds_a_short_mixed_load(tmp_path: Path) -> None:
    _check(run_load(tmp_path, seconds=10, clients=6, seed=0))


@pytest.mark.slow
def test_the_server_holds_a_long_mixed_load(tmp_path: Path) -> None:
    _check(run_load(tmp_path, seconds=120, clients=8, seed=1))
