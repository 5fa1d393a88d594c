"""Load on the detection server: concurrent loopback clients, malformed and oversized requests mixed in.

The server runs as ``python main.py serve`` in a child process with its own
temporary folder, so its memory (RSS from ``/proc``) and its left-over
temporary files can be measured. Used by ``test_server_load.py`` and
``python -m tests.reliability.figures``.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.conftest import REPO_ROOT

TOKEN = "reliability-load-token-" + "z" * 16
CROP_BYTES = 32 * 48 * 48 * 4


@functools.cache
def _oversized() -> bytes:
    """A classify body one crop over the server's 1024-crop limit (302 MB, made once, when first needed)."""
    return bytes(CROP_BYTES * 1025)


@dataclass
class LoadReport:
    """What a load run saw.

    Args:
        requests: Requests sent.
        by_status: HTTP status → count (``0``: no answer: connection error or timeout).
        unexpected: Requests whose status was not the one their kind must get.
        latencies_ms: Latency of every valid classify request that got 200.
        rss_start_kb, rss_end_kb: Server RSS after warm-up and at the end.
        leftovers: Entries left in the server's temporary folder.
        alive: Whether ``/health`` answered at the end.
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    leftovers: list[str] = field(default_factory=list)
    alive: bool = False

    @property
    def p95_ms(self) -> float:
        """95th percentile latency of the valid classify requests."""
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else float("nan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _requests(rng: random.Random, crops: bytes):
    """One request: (kind, method, path, body, headers, the statuses it may get)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    octet = {**auth, "Content-Type": "application/octet-stream"}
    busy = {503}
    choice = rng.random()
    if choice < 0.45:
        return "classify", "POST", "/v1/classify", crops, octet, {200} | busy
    if choice < 0.55:
        return "no-token", "POST", "/v1/classify", crops, {"Content-Type": "application/octet-stream"}, {401}
    if choice < 0.63:
        return "ragged-body", "POST", "/v1/classify", crops[:1000], octet, {400}
    if choice < 0.70:
        nan = np.full(CROP_BYTES // 4, np.nan, dtype="<f4").tobytes()
        return "nan-crops", "POST", "/v1/classify", nan, octet, {400} | busy
    if choice < 0.77:
        return "wrong-type", "POST", "/v1/classify", crops, {**auth, "Content-Type": "text/plain"}, {400}
    if choice < 0.78:
        # the server takes up to 1024 crops (301 MB) per request: an oversized body is 302 MB, so it stays rare
        return "oversized-classify", "POST", "/v1/classify", _oversized(), octet, {413}
    if choice < 0.88:
        return "garbage-ct", "POST", "/v1/detect", b"not a CT at all" * 100, octet, {400, 415} | busy
    if choice < 0.92:
        return "oversized-ct", "POST", "/v1/detect", b"\0" * (3 << 20), octet, {413}
    if choice < 0.96:
        return "unknown-path", "GET", "/v1/nothing", b"", auth, {404, 405}
    return "health", "GET", "/health", b"", {}, {200}


def run_load(folder: Path, seconds: float, clients: int = 8, seed: int = 0) -> LoadReport:
    """Start the server, hammer it from ``clients`` threads for ``seconds``, then measure it and stop it."""
    import httpx

    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / "server-tmp"
    temp.mkdir()
    token_file = folder / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "main.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--token-file", str(token_file),
         "--device", "cpu", "--max-upload-mb", "2", "--max-batch", "8"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    report = LoadReport()
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"the server exited: {server.stderr.read()[-800:]}")
            time.sleep(0.1)
        crops = np.random.default_rng(seed).normal(-500, 300, (1, 32, 48, 48)).astype("<f4").tobytes()
        with httpx.Client(timeout=30) as warm:
            warm.post(base + "/v1/classify", content=crops, headers={"Authorization": f"Bearer {TOKEN}",
                                                                       "Content-Type": "application/octet-stream"})
        report.rss_start_kb = _rss_kb(server.pid)
        stop_at = time.monotonic() + seconds

        def client(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            with httpx.Client(timeout=30) as http:
                while time.monotonic() < stop_at:
                    kind, method, path, body, headers, allowed = _requests(rng, crops)
                    began = time.perf_counter()
                    try:
                        status = http.request(method, base + path, content=body or None, headers=headers).status_code
                    except httpx.TransportError:
                        status = 0
                    elapsed = 1000 * (time.perf_counter() - began)
                    with lock:
                        report.requests += 1
                        report.by_status[status] = report.by_status.get(status, 0) + 1
                        if status not in allowed:
                            report.unexpected.append(f"{kind}: {status}")
                        if kind == "classify" and status == 200:
                            report.latencies_ms.append(elapsed)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.5)
        report.rss_end_kb = _rss_kb(server.pid)
        try:
            report.alive = httpx.get(base + "/health", timeout=5).status_code == 200
        except httpx.TransportError:
            report.alive = False
        report.leftovers = sorted(p.name for p in temp.iterdir())
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stderr.close()
    return report
