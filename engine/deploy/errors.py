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
