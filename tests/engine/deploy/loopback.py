"""A real uvicorn detection server on an ephemeral loopback port, for client tests (engine and viewer)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from engine.serve.app import create_app
from engine.serve.service import ServerSettings

TOKEN = "loopback-token-" + "k" * 24


def free_port() -> int:
    """A TCP port nothing listens on right now (may be reused by the time it is bound, rarely)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def loopback_server(
    load_detector: Callable[[], Any], token: str = TOKEN, ready_timeout: float = 60.0, **settings: Any
) -> Iterator[Any]:
    """Serve ``create_app(load_detector, token)`` on 127.0.0.1 until the block ends; yields the app.

    ``app.state.url`` is the base URL. Waits for ``/ready`` before yielding.
    """
    import uvicorn

    port = free_port()
    app = create_app(load_detector, token, ServerSettings(**settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="loopback-server", daemon=True)
    thread.start()
    app.state.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                with urllib.request.urlopen(app.state.url + "/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the loopback server never became ready")
            time.sleep(0.05)
        yield app
    finally:
        server.should_exit = True
        thread.join(30)
