"""The modules of ``sphere_rl`` import one another without circles.

Every ``import`` and ``from ... import`` of a ``sphere_rl`` module is an edge, wherever it sits:
at the top of a file, inside a function, or under ``if TYPE_CHECKING:``. Moving an import into a
function only delays it; the two modules still need each other, so such an edge counts as much as
a top-level one. ``from package import name`` is an edge to ``package.name`` when that is a module
and to ``package`` otherwise; relative imports are resolved against the importing module. Imports
by string (``importlib.import_module``) are not seen.

Command modules of ``sphere_rl.cli`` (those with a ``register(app)``) import none of each other:
what several commands need lives in ``cli/common.py``.

To list the edges of a module by hand: ``python tests/test_import_graph.py sphere_rl.envs.vector``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "sphere_rl"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line``; ``local`` when the import is inside a function."""

    source: str
    target: str
    line: int
    local: bool

    def __str__(self) -> str:
        where = "function-local" if self.local else "top-level"
        return f"{self.source} -> {self.target} (line {self.line}, {where})"


def find_modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _walk(node: ast.AST, local: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node``, with whether it sits inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, local
        inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def module_edges(module: str, path: Path, modules: Mapping[str, Path]) -> list[Edge]:
    """The edges from ``module`` to other modules of ``modules``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    edges = []
    for node, local in _walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _base(module, is_package, node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in modules else base)
        for target in dict.fromkeys(targets):
            if target in modules and target != module:
                edges.append(Edge(module, target, node.lineno, local))
    return edges


def import_graph(root: Path = SRC, package: str = PACKAGE) -> list[Edge]:
    """Every edge between the modules of ``package`` under ``root``."""
    modules = find_modules(root, package)
    return [edge for name, path in modules.items() for edge in module_edges(name, path, modules)]


def circles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def describe(circle: list[str], edges: list[Edge]) -> str:
    members = set(circle)
    inside = [str(e) for e in edges if e.source in members and e.target in members]
    return f"{len(circle)} modules: {', '.join(circle)}\n    " + "\n    ".join(inside)


def test_graph_sees_known_imports() -> None:
    """The parser finds imports of every kind, so the circle test cannot pass on an empty graph."""
    edges = import_graph()
    pairs = {(e.source, e.target): e for e in edges}
    assert len(find_modules(SRC)) > 50
    assert len(edges) > 200
    # ``from sphere_rl.analysis.html import render_html``: a top-level import of a module
    assert not pairs["sphere_rl.analysis.report", "sphere_rl.analysis.html"].local
    # ``from sphere_rl.analysis import plots``: ``from package import module``
    assert ("sphere_rl.analysis.report", "sphere_rl.analysis.plots") in pairs
    # ``from sphere_rl.envs.registry import ...`` in the package's ``__init__``
    assert ("sphere_rl.envs", "sphere_rl.envs.registry") in pairs
    # a function-local import (envpool is imported only when that backend is chosen)
    assert pairs["sphere_rl.envs.vector", "sphere_rl.envs.envpool_backend"].local


def test_graph_resolves_relative_and_local_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.sub import leaf\n",
        "top.py": "import pkg.sub.leaf\nfrom . import other\n",
        "other.py": "def f():\n    from .sub.leaf import VALUE\n    return VALUE\n",
        "sub/__init__.py": "from .leaf import VALUE\n",
        "sub/leaf.py": "from .. import top\nfrom ..top import something\nimport os\nVALUE = 1\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    edges = import_graph(tmp_path, "pkg")
    assert {(e.source, e.target, e.local) for e in edges} == {
        ("pkg", "pkg.sub.leaf", False),
        ("pkg.top", "pkg.sub.leaf", False),
        ("pkg.top", "pkg.other", False),
        ("pkg.other", "pkg.sub.leaf", True),
        ("pkg.sub", "pkg.sub.leaf", False),
        ("pkg.sub.leaf", "pkg.top", False),
    }
    assert circles(edges) == [["pkg.other", "pkg.sub.leaf", "pkg.top"]]


def test_no_import_circles() -> None:
    edges = import_graph()
    found = circles(edges)
    assert not found, "import circles (each module needs the others, directly or not):\n" + (
        "\n".join(f"  circle of {describe(c, edges)}" for c in found)
    )


def command_modules(modules: Mapping[str, Path]) -> set[str]:
    """The modules of ``sphere_rl.cli`` that define commands: those with a top-level
    ``register(app)`` function (app.py, which calls them all, has none)."""
    found = set()
    for name, path in modules.items():
        if not name.startswith(f"{PACKAGE}.cli."):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body):
            found.add(name)
    return found


def test_no_command_module_imports_another() -> None:
    """What several commands need lives in a shared module (cli/common.py), so that a command
    module can change without breaking another."""
    commands = command_modules(find_modules(SRC))
    assert {f"{PACKAGE}.cli.{name}" for name in ("train", "sweep", "methods", "entk")} <= commands
    crossing = [str(e) for e in import_graph() if e.source in commands and e.target in commands]
    assert not crossing, "command modules importing one another:\n  " + "\n  ".join(crossing)


if __name__ == "__main__":
    graph = import_graph()
    for name in sys.argv[1:] or sorted({e.source for e in graph}):
        for edge in graph:
            if edge.source == name:
                print(edge)
