"""Server throughput: 16 concurrent loopback clients sending single crops, batching on vs ``--max-batch 1``.

    python -m engine.deploy.serve_bench [--seconds 8] [--clients 16] [--max-wait-ms 10]

Starts ``python main.py serve`` twice as a child process on a free loopback
port (the demo models, a throw-away token file), runs the clients for a fixed
time against each and prints requests/s and p50/p95 latency side by side.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.paths import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in time")


def run_clients(base: str, token: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads posting one crop each, back to back, for ``seconds``; latency in ms."""
    import httpx

    crop = np.random.default_rng(0).uniform(-1000, 400, (1, 32, 48, 48)).astype("<f4").tobytes()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=base, timeout=30) as session:
            while time.monotonic() < stop_at:
                began = time.perf_counter()
                try:
                    status = session.post("/v1/classify", content=crop, headers=headers).status_code
                except httpx.HTTPError:  # a timeout on an overloaded machine counts as a failed request
                    status = -1
                elapsed = (time.perf_counter() - began) * 1000.0
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        failures[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    values = np.asarray(latencies) if latencies else np.zeros(1)
    return {"requests": len(latencies), "failed": failures[0], "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1)}


def bench_server(max_batch: int, clients: int, seconds: float, max_wait_ms: float, token_file: Path, token: str) -> dict[str, Any]:
    """One server run with ``--max-batch max_batch``."""
    port = _free_port()
    command = [sys.executable, "main.py", "serve", "--port", str(port), "--token-file", str(token_file),
               "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        run_clients(base, token, clients, min(1.0, seconds))  # warm-up
        result = run_clients(base, token, clients, seconds)
    finally:
        process.terminate()
        process.wait(60)
    return {"max_batch": max_batch, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per configuration (default 8)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the batching server's --max-wait-ms")
    parser.add_argument("--max-batch", type=int, default=32, help="the batching server's --max-batch (default 32)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        token = secrets.token_urlsafe(32)
        token_file = Path(folder) / "token"
        token_file.write_text(token)
        os.chmod(token_file, 0o600)
        rows = [bench_server(n, args.clients, args.seconds, args.max_wait_ms, token_file, token)
                for n in (args.max_batch, 1)]
    print(f"{args.clients} concurrent loopback clients, one crop per request, {args.seconds:g} s each:")
    print(f"{'max_batch':>9} {'requests/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'requests':>9} {'failed':>6}")
    for row in rows:
        print(f"{row['max_batch']:>9} {row['requests_per_s']:>10} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row['requests']:>9} {row['failed']:>6}")
    ratio = rows[0]["requests_per_s"] / rows[1]["requests_per_s"] if rows[1]["requests_per_s"] else float("nan")
    print(f"batching: {ratio:.2f}× the throughput of --max-batch 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
