"""The package's floors (docs/architecture.md): no import runs upward, no import circle, the CLI calls jobs only.

Read with ``ast`` from the source (every ``import`` and ``from … import``, inside functions and under
``TYPE_CHECKING`` too), so a lazy or type-only import counts like any other.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "netadapt"

# Lowest first: a unit (a top-level module or a subpackage of netadapt) may import only units listed before it, and
# itself. docs/architecture.md says why each sits where it does; a new module gets a place here.
FLOORS: list[tuple[str, list[str]]] = [
    ("ground", ["netadapt", "errors", "yamlio", "cache", "files", "units", "config", "genotype", "contracts",
                "hookspecs", "plugins"]),
    ("components", ["bases", "cost", "data", "weights", "remap", "plots", "detectors", "export", "engine", "search",
                    "select"]),
    ("jobs", ["jobs", "reference", "testing"]),
    ("interface", ["cli", "__main__"]),
]
ORDER = [unit for _, units in FLOORS for unit in units]
CLI_MAY_IMPORT = {"netadapt.jobs", "netadapt.errors", "netadapt"}  # and netadapt.cli.*: parse, call a job, print


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["netadapt", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The netadapt modules ``name`` imports (``from pkg import module`` resolves to the module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


def unit_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "netadapt"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for name, targets in edges.items():
        for target in targets:
            source, destination = unit_of(name), unit_of(target)
            if source != destination and ORDER.index(destination) > ORDER.index(source):
                found.append(f"{name} imports {target} ({destination} sits above {source})")
    return sorted(found)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_floor():
    assert sorted({unit_of(name) for name in modules()} - set(ORDER)) == []


def test_no_import_runs_upward():
    assert upward_imports(graph()) == []


def test_no_import_circle():
    assert circles(graph()) == []


def test_the_cli_imports_jobs_only():
    edges = graph()
    wrong = sorted(f"{name} imports {target}" for name, targets in edges.items() if unit_of(name) == "cli"
                   for target in targets if unit_of(target) != "cli" and target not in CLI_MAY_IMPORT
                   and not target.startswith("netadapt.jobs."))
    assert wrong == []


@pytest.mark.parametrize("source, expected", [
    ("from netadapt.jobs import train\n", {"netadapt.jobs"}),
    ("def f():\n    from netadapt.cli import main\n", {"netadapt.cli.main"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import jobs\n", {"netadapt.jobs"}),
])
def test_the_checker_sees_lazy_type_only_and_relative_imports(tmp_path, source, expected):
    path = tmp_path / "errors.py"
    path.write_text(source)
    known = {"netadapt": PACKAGE / "__init__.py", "netadapt.jobs": PACKAGE / "jobs" / "__init__.py",
             "netadapt.cli": PACKAGE / "cli" / "__init__.py", "netadapt.cli.main": PACKAGE / "cli" / "main.py",
             "netadapt.errors": path}
    found = imports_of("netadapt.errors", path, known)
    assert found == expected
    assert upward_imports({"netadapt.errors": found}) != []


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
