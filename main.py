"""Lung-nodule CT analysis: the desktop viewer and its command line.

    python main.py [PATH]          open the viewer (the built-in demo series, or PATH)
    python main.py COMMAND ...     run a command-line tool (python main.py --help)

Not for clinical use.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand name → module implementing ``DESCRIPTION``, ``add_arguments`` and ``run``.
COMMANDS: dict[str, str] = {
    "info": "engine.commands.info",
    "evaluate": "engine.commands.evaluate",
    "gui-bench": "app.bench",
    "analyze": "engine.commands.analyze",
    "bench": "engine.commands.bench",
    "demo-data": "engine.commands.demo_data",
    "gallery": "engine.commands.gallery",
    "export": "engine.commands.export_models",
    "serve": "engine.commands.serve",
}
#: Subcommands that take over the rest of the command line themselves.
PASSTHROUGH: dict[str, str] = {
    "train": "training.cli",
}

_DISCLAIMER = "Not for clinical use."


def _help_text() -> str:
    lines = [
        "usage: python main.py [PATH]          open the viewer (demo series, or a CT file/DICOM folder)",
        "       python main.py COMMAND [ARGS]  command-line tools",
        "",
        "commands:",
    ]
    for name, module in {**COMMANDS, **PASSTHROUGH}.items():
        description = getattr(importlib.import_module(module), "DESCRIPTION", "")
        lines.append(f"  {name:12} {description}")
    lines += ["", "python main.py COMMAND --help shows a command's options.", _DISCLAIMER]
    return "\n".join(lines)


def run_command(argv: list[str]) -> int:
    """Run one subcommand; engine errors are printed as one line, exit status 2."""
    from engine.errors import EngineError

    name = argv[0]
    if name in PASSTHROUGH:
        module = importlib.import_module(PASSTHROUGH[name])
        return int(module.main(argv[1:]) or 0)
    module = importlib.import_module(COMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"main.py {name}", description=module.DESCRIPTION, epilog=_DISCLAIMER)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: a subcommand, the help, or the GUI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(_help_text())
        return 0
    if argv and (argv[0] in COMMANDS or argv[0] in PASSTHROUGH):
        return run_command(argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("--reset-settings",):
        print(f"unknown option {argv[0]!r}\n\n{_help_text()}", file=sys.stderr)
        return 2
    from app.main import run_gui  # Qt is imported only for the GUI

    return run_gui(argv)


if __name__ == "__main__":
    sys.exit(main())
