"""Reading the training CLI's output: complete lines out of arbitrary chunks, and JSON events out of lines.

A child process's pipe (or a growing ``metrics.jsonl``) delivers bytes in
chunks that need not end at a line break, so :class:`LineBuffer` keeps the
unfinished tail until the rest arrives. :func:`parse_event` turns one line into
an event dict, or None for anything else (a library's print, a torn line):
docs/training-protocol.md asks readers to ignore lines that do not parse.
Qt-free, so it is tested without a display.
"""

from __future__ import annotations

import json
from typing import Any

#: Longest unfinished line kept (bytes); a child that never prints a newline cannot exhaust memory.
MAX_PENDING_BYTES = 1 << 20


class LineBuffer:
    """Splits a byte stream into complete, decoded lines.

    Args:
        max_pending: Longest unfinished line kept, in bytes; a longer one is
            released as a line of its own.
    """

    def __init__(self, max_pending: int = MAX_PENDING_BYTES) -> None:
        self._pending = b""
        self.max_pending = max_pending

    @property
    def pending(self) -> bytes:
        """The bytes received after the last line break."""
        return self._pending

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk; returns the lines it completed (without their ``\\n``/``\\r\\n``).

        Bytes that are not UTF-8 are replaced (U+FFFD) rather than refused: the
        text is shown to a person, never executed.
        """
        data = self._pending + bytes(chunk)
        *complete, self._pending = data.split(b"\n")
        lines = [_decode(line) for line in complete]
        if len(self._pending) > self.max_pending:
            lines.append(_decode(self._pending))
            self._pending = b""
        return lines

    def flush(self) -> list[str]:
        """The unfinished last line, if any (call when the stream has ended)."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def parse_event(line: str) -> dict[str, Any] | None:
    """The training event on ``line``, or None when the line is not one.

    An event is a JSON object with a string ``event`` field; anything else
    (plain text, a JSON list or number, a torn line) is not.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return None
    return value
