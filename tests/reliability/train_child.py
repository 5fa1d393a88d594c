"""A training child for the kill tests: ``python -m tests.reliability.train_child ARGS...`` = ``python -m training ARGS...``.

With ``RELIABILITY_SLOW_WRITES=SECONDS`` every atomic write waits that long
between writing its temporary file and renaming it into place, so that a
SIGKILL can land in the middle of a checkpoint write.
"""

from __future__ import annotations

import os
import sys
import time


def _slow_writes(seconds: float) -> None:
    import engine.files as files

    rename = files._rename

    def slow_rename(source, destination) -> None:
        time.sleep(seconds)
        rename(source, destination)

    files._rename = slow_rename


def main() -> int:
    """Run the training CLI on ``sys.argv[1:]``, with slow writes when asked."""
    delay = float(os.environ.get("RELIABILITY_SLOW_WRITES", "0") or 0)
    if delay > 0:
        _slow_writes(delay)
    from training.cli import main as training_main

    return training_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
