"""Errors of exporting and serving the models (subclasses of :class:`engine.errors.EngineError`)."""

from __future__ import annotations

from engine.errors import EngineError


class ExportError(EngineError):
    """A model could not be exported, or the output folder cannot be written."""


class EquivalenceError(ExportError):
    """An exported model does not compute what the eager model computes (beyond the tolerance)."""


class ExportedModelError(EngineError):
    """An exported model file (ONNX, TorchScript, torch.export) cannot be loaded or run."""


class ServeError(EngineError):
    """The detection server cannot start as asked (unsafe host, unreadable token file, ...)."""


class RemoteDetectorError(EngineError):
    """Detect on a server failed; the message names the server's URL (never the token)."""


class ServerUnreachableError(RemoteDetectorError):
    """The server cannot be reached (connection refused, unknown host, network down)."""


class ServerAuthError(RemoteDetectorError):
    """The server refused the bearer token (401)."""


class ServerBusyError(RemoteDetectorError):
    """The server cannot take the request now (503: models loading, queue full, detector busy)."""


class ServerTimeoutError(RemoteDetectorError):
    """The server did not answer within the timeout."""


class ServerResponseError(RemoteDetectorError):
    """The server refused the request (4xx/5xx) or answered with something unreadable."""
