"""Run one plain function off the GUI thread and get its result back as a signal.

Small checks that may touch the disk or import torch (is this a LUNA16
folder? is this checkpoint a classifier?) run through
:class:`CallWorker` on the window's :class:`~app.workers.ThreadPool`, so the
GUI thread never blocks on them and never imports torch itself.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from engine.errors import EngineError


class CallWorker(QObject):
    """Calls ``function()`` in its thread.

    Connect the signals to methods of a ``QObject`` living in the GUI thread
    (not to lambdas), so Qt queues the calls to that thread.

    Args:
        function: A callable without arguments (bind them with a lambda or
            ``functools.partial``).
        tag: Any value handed back with the result, to tell requests apart.

    Signals:
        done(object, object): the tag and the return value.
        failed(object, str): the tag and the message of an
            :class:`~engine.errors.EngineError`, or a description of any other failure.
        finished(): always last.
    """

    done = Signal(object, object)
    failed = Signal(object, str)
    finished = Signal()

    def __init__(self, function: Callable[[], Any], tag: Any = None) -> None:
        super().__init__()
        self.function = function
        self.tag = tag

    @Slot()
    def run(self) -> None:
        """Call the function; emits exactly one of done / failed, then finished."""
        try:
            self.done.emit(self.tag, self.function())
        except EngineError as exc:
            self.failed.emit(self.tag, str(exc))
        except MemoryError:
            self.failed.emit(self.tag, "not enough memory")
        except Exception as exc:  # noqa: BLE001 — a worker must report every failure, not die silently
            self.failed.emit(self.tag, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            self.finished.emit()
