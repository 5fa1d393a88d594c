"""The detection server (``python main.py serve``): an ASGI app on uvicorn with dynamic request batching.

* :mod:`engine.serve.app` — ``create_app(load_detector, token, settings)`` (Starlette).
* :mod:`engine.serve.batcher` — :class:`DynamicBatcher`: bounded queue, one model worker.
* :mod:`engine.serve.service` — the models, loaded in the background; ``ServerSettings``.
* :mod:`engine.serve.auth` — the bearer token file, constant-time checks, the loopback rule.
* :mod:`engine.serve.upload` — size-bounded uploads, format sniffing, safe zips, private temp folders.
* :mod:`engine.serve.metrics` — Prometheus metrics.
* :mod:`engine.serve.result_codec` — a whole detection result as an ``.npz`` (``/v1/detect?include=probability``).
* :mod:`engine.serve.client` — :class:`RemoteDetector`: Detect on a server like a local detector (the viewer's "Detect on: server").
"""

from __future__ import annotations
