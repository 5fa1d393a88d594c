"""Command-line subcommands of ``python main.py``.

Each module exposes ``DESCRIPTION`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; ``main.py`` registers them by name.
"""
