"""``python -m training``: the trainers' command line (see :mod:`training.cli`)."""

from __future__ import annotations

import sys

from training.cli import main

if __name__ == "__main__":
    sys.exit(main())
