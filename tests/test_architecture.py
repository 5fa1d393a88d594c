"""The package structure: no import cycles, and imports point one way (app → engine, training → engine).

Every module under ``engine/``, ``training/`` and ``app/`` is parsed with
``ast`` (nothing is imported). Only module-level imports count: an import
inside a function runs when the function is called, so it cannot form a
cycle at import time and is how heavy or optional parts are loaded lazily.
Imports under ``if TYPE_CHECKING:`` are left out too (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "training", "app")
GUI_PACKAGES = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "shiboken6")


def module_name(path: Path) -> str:
    """``engine/io/ct.py`` → ``engine.io.ct``; ``engine/io/__init__.py`` → ``engine.io``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run on import: the body, into ``if``/``try``/``with`` blocks, not into functions or classes."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)
        else:
            yield node


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


@cache
def imported_names(module: str) -> frozenset[str]:
    """Dotted names a module imports at module level (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, path.name == "__init__.py", node.level, node.module)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _parents(name: str) -> Iterator[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c`` (importing a module runs its packages' ``__init__`` first)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the project modules it loads when imported (its own packages' ``__init__`` left out)."""
    known = modules()
    edges = {}
    for module in known:
        own_packages = set(_parents(module))
        targets = {p for name in imported_names(module) for p in _parents(name) if p in known}
        edges[module] = frozenset(targets - own_packages)
    return edges


def find_cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_is_found() -> None:
    names = modules()
    assert {"engine.files", "engine.run_layout", "training.cli", "app.main_window"} <= set(names)
    assert all(name.split(".")[0] in PACKAGES for name in names)


def test_cycle_finder_sees_a_cycle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert find_cycles(edges) == [["a", "b", "c"]]
    assert find_cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_cycles() -> None:
    cycles = find_cycles(graph())
    assert not cycles, "module-level import cycles (make one import lazy or move the shared part):\n" + "\n".join(
        " ↔ ".join(c) for c in cycles
    )


@pytest.mark.parametrize("package", ["engine", "training"])
def test_engine_and_training_import_no_gui_and_not_the_app(package: str) -> None:
    """Not even lazily: engine and training install and run without Qt."""
    bad = []
    for module, path in modules().items():
        if module.split(".")[0] != package:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            bad += [f"{module} imports {t}" for t in targets if t.split(".")[0] in (*GUI_PACKAGES, "app")]
    assert not bad, "\n".join(bad)


def test_engine_never_imports_training() -> None:
    bad = []
    for module, path in modules().items():
        if module.split(".")[0] != "engine":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                bad += [f"{module} imports {a.name}" for a in node.names if a.name.split(".")[0] == "training"]
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "training":
                bad.append(f"{module} imports {node.module}")
    assert not bad, "\n".join(bad)
