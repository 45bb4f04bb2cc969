"""The shape of app/, read from its source with `ast` (nothing is imported): the agent side stands apart
from the server, no module outgrows 700 lines, and no two modules import each other, even lazily or
only for types."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    """Dotted name → file, for every module of app/ (a package is its __init__.py)."""
    found = {}
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The modules an import statement of module ``name`` names (``from m import x`` names m.x when x is
    a module of app/, else m)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the package of `name`
        package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _all_imports(name: str) -> set[str]:
    """Every module ``name`` imports, wherever the import statement is (functions, TYPE_CHECKING too)."""
    tree = ast.parse(MODULES[name].read_text())
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    return {m for node in statements for m in _imported(name, node)}


def test_the_agent_side_imports_nothing_of_the_server():
    """app.agent.* may import the standard library, third-party packages, app.protocol and itself."""
    agent = [name for name in MODULES if name == "app.agent" or name.startswith("app.agent.")]
    assert agent, "app/agent/ is missing"
    crossing = {
        name: sorted(m for m in _all_imports(name) if (m == "app" or m.startswith("app.")) and not _allowed(m))
        for name in agent
    }
    assert not {k: v for k, v in crossing.items() if v}, crossing


def _allowed(module: str) -> bool:
    return module == "app.protocol" or module == "app.agent" or module.startswith("app.agent.")


def test_protocol_imports_nothing_of_app():
    assert not {m for m in _all_imports("app.protocol") if m == "app" or m.startswith("app.")}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_is_over_700_lines():
    over = {str(path.relative_to(ROOT)): n for path in MODULES.values() if (n := _lines(path)) > MAX_LINES}
    assert not over, f"split these modules (at most {MAX_LINES} lines each): {over}"


def test_no_import_cycles():
    """Tarjan's strongly connected components of the import graph, every import counted (those inside
    functions and under ``if TYPE_CHECKING:`` too, so no circle hides behind a deferred import): every
    component is a single module."""
    graph = {name: {m for m in _all_imports(name) if m in MODULES and m != name} for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            connect(name)
    assert not cycles, f"modules that import each other: {cycles}"
