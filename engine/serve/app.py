"""The detection server's ASGI app (Starlette): health, readiness, models, metrics, classify, detect.

Every ``/v1/*`` request needs ``Authorization: Bearer <token>`` (401 otherwise).
Errors are JSON ``{"error": "..."}`` with a 4xx/5xx status, never a traceback.
``POST /v1/detect?include=probability`` answers with the whole result instead
of the findings JSON: an ``.npz`` (:mod:`engine.serve.result_codec`) that the
viewer's :class:`~engine.serve.client.RemoteDetector` reads back.
See ``python main.py serve --help`` and README "Detection server".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.errors import EngineError
from engine.serve.auth import bearer_matches
from engine.serve.batcher import QueueFull
from engine.serve.metrics import ServerMetrics
from engine.serve.result_codec import MEDIA_TYPE as RESULT_MEDIA_TYPE
from engine.serve.result_codec import encode_result
from engine.serve.service import CROP_BYTES, DetectorBusy, ModelService, ServerSettings
from engine.serve.upload import UploadError, prepare_ct, private_folder, receive_to_file

Handler = Callable[[Request], Awaitable[Response]]
#: Query parameters of /v1/detect besides the grouping settings' fields.
FINDING_PARAMETERS = ("nodule_threshold", "malignancy_threshold")
#: ``/v1/detect?include=...``: what may be added to the answer.
INCLUDE_CHOICES = ("probability",)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _spacing(text: str | None) -> tuple[float, float, float] | None:
    """The ``spacing`` query parameter, ``"index,row,col"`` in mm, or None when absent."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and 0.0 < v <= 100.0 for v in values):
        raise ValueError(f"spacing must be three voxel sizes in mm, 'index,row,col' (e.g. 2.5,0.7,0.7), got {text!r}")
    return values  # type: ignore[return-value]


def create_app(
    load_detector: Callable[[], Any], token: str, settings: ServerSettings | None = None
) -> Starlette:
    """Build the server.

    Args:
        load_detector: Builds the detector; called once on a background thread
            at start-up (``/ready`` is 503 until it returns).
        token: The bearer token every ``/v1/*`` request must carry.
        settings: Batching and limits.

    Returns:
        The ASGI app; ``app.state.service`` is its :class:`ModelService`.
    """
    settings = settings or ServerSettings()
    metrics = ServerMetrics()
    service = ModelService(load_detector, settings, metrics)

    def endpoint(name: str, handler: Handler, protected: bool = True) -> Handler:
        async def wrapped(request: Request) -> Response:
            began = time.perf_counter()
            if protected and not bearer_matches(request.headers.get("authorization"), token):
                response: Response = error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            else:
                try:
                    response = await handler(request)
                except UploadError as exc:
                    response = error(exc.status, str(exc))
                except Exception as exc:  # never a traceback to the client; the message names the problem
                    response = error(500, f"internal error: {type(exc).__name__}: {exc}")
            metrics.requests.labels(name, str(response.status_code)).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - began)
            return response

        return wrapped

    def not_ready() -> Response | None:
        if service.ready.is_set():
            return None
        if service.error:
            return error(503, f"the models failed to load: {service.error}")
        return error(503, "the models are still loading", {"Retry-After": str(settings.retry_after_s)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        return not_ready() or JSONResponse({"status": "ready"})

    async def models(request: Request) -> Response:
        return not_ready() or JSONResponse({"models": service.models, "device": str(service.detector.device)})

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def classify(request: Request) -> Response:
        if (waiting := not_ready()) is not None:
            return waiting
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/octet-stream":
            return error(400, "send the crops as Content-Type: application/octet-stream (little-endian float32)")
        limit = settings.max_crops * CROP_BYTES
        body = await _read_limited(request, limit)
        if len(body) == 0 or len(body) % CROP_BYTES:
            return error(400, f"the body is {len(body)} bytes, not a whole number of 32×48×48 float32 crops "
                              f"({CROP_BYTES} bytes each)")
        try:
            spacing = _spacing(request.query_params.get("spacing"))
        except ValueError as exc:
            return error(400, str(exc))
        crops = np.frombuffer(body, dtype="<f4").astype(np.float32).reshape(-1, 32, 48, 48)
        if not np.isfinite(crops).all():
            return error(400, "the crops hold NaN or infinite values")
        try:
            future = service.batcher.submit(crops)
        except QueueFull:
            return error(503, "the classify queue is full; retry shortly", {"Retry-After": str(settings.retry_after_s)})
        p_nodule, p_malignant = await asyncio.wrap_future(future)
        p_malignant, size_aware = await asyncio.to_thread(service.size_aware, crops, spacing, p_malignant)
        return JSONResponse({"p_nodule": p_nodule.tolist(), "p_malignant": p_malignant.tolist(),
                             "size_aware": size_aware})

    async def detect(request: Request) -> Response:
        if (waiting := not_ready()) is not None:
            return waiting
        grouping, options = _detect_options(request, service.detector)
        include = _include(request)
        declared = request.headers.get("content-length")
        with private_folder() as folder:
            upload = folder / "upload.bin"
            await receive_to_file(request.stream(), upload, settings.max_upload, int(declared) if declared else None)
            ct_path = prepare_ct(upload, folder, settings.max_upload)
            try:
                future = service.submit_detect(
                    lambda: _run_detection(service.detector, ct_path, grouping, options, "probability" in include)
                )
            except DetectorBusy:
                return error(503, "the detector is busy; retry later", {"Retry-After": str(5 * settings.retry_after_s)})
            try:
                payload = await asyncio.wrap_future(future)
            except EngineError as exc:
                return error(400, f"cannot read the CT: {exc.reason}")
        if isinstance(payload, bytes):
            return Response(payload, media_type=RESULT_MEDIA_TYPE)
        return JSONResponse(payload)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    routes = [
        Route("/health", endpoint("health", health, protected=False)),
        Route("/ready", endpoint("ready", ready, protected=False)),
        Route("/metrics", endpoint("metrics", metrics_text, protected=False)),
        Route("/v1/models", endpoint("models", models)),
        Route("/v1/classify", endpoint("classify", classify), methods=["POST"]),
        Route("/v1/detect", endpoint("detect", detect), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.metrics = metrics
    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(f"the body is {declared} bytes; at most {limit} are accepted per request", 413)
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadError(f"the body exceeds {limit} bytes, the most accepted per request", 413)
        parts.append(chunk)
    return b"".join(parts)


def _detect_options(request: Request, detector: Any) -> tuple[Any, dict[str, float]]:
    """Grouping settings and finding thresholds from the query string (unknown names refused)."""
    base = detector.config.grouping
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(request.query_params) - set(fields) - set(FINDING_PARAMETERS) - {"include"})
    if unknown:
        allowed = ", ".join([*fields, *FINDING_PARAMETERS, "include"])
        raise UploadError(f"unknown query parameter {', '.join(unknown)}; use {allowed}")
    changes: dict[str, Any] = {}
    for name, value in request.query_params.items():
        if name in FINDING_PARAMETERS or name == "include":
            continue
        default = getattr(base, name)
        changes[name] = _number(name, value) if isinstance(default, (int, float)) and not isinstance(default, bool) else value
    try:
        grouping = dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise UploadError(f"bad grouping setting: {exc}") from None
    options = {}
    for name in FINDING_PARAMETERS:
        options[name] = _number(name, request.query_params.get(name, "0.5"))
        if not 0.0 <= options[name] <= 1.0:
            raise UploadError(f"{name} must lie in [0, 1], got {options[name]}")
    return grouping, options


def _include(request: Request) -> set[str]:
    """The names of ``?include=a,b`` (refused unless among :data:`INCLUDE_CHOICES`)."""
    names = {part.strip() for value in request.query_params.getlist("include") for part in value.split(",") if part.strip()}
    unknown = sorted(names - set(INCLUDE_CHOICES))
    if unknown:
        raise UploadError(f"unknown include {', '.join(unknown)}; use {', '.join(INCLUDE_CHOICES)}")
    return names


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UploadError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UploadError(f"{name} must be a finite number, got {text!r}")
    return value


def _run_detection(
    detector: Any, ct_path: Any, grouping: Any, options: dict[str, float], whole_result: bool = False
) -> dict[str, Any] | bytes:
    """Load, detect (re-group when the settings differ from the detector's) and format.

    Returns:
        The ``analyze --json`` payload, or with ``whole_result`` the
        :func:`~engine.serve.result_codec.encode_result` archive (the findings inside it too).
    """
    from engine.export import findings_to_json
    from engine.io.ct import load_ct

    ct = load_ct(ct_path)
    result = detector.detect(ct)
    if grouping != result.grouping:
        result = detector.regroup(result, ct, grouping)
    payload = json.loads(json.dumps(findings_to_json(result, source=None, **options), allow_nan=True))
    return encode_result(result, payload) if whole_result else payload
