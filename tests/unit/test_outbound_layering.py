"""One-way layering between the protocol steps and what they ask of other servers, read from the source
with `ast` (nothing is imported): app/flows/ does no HTTP itself (it calls app/outbound/), and
app/outbound/ knows nothing of the flows that call it. Every import statement counts, also inside
functions and under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(source: str, package: tuple[str, ...]) -> set[str]:
    """The absolute module names the import statements of a module of ``package`` name (``from m import x``:
    m and m.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, `level - 1` packages up
                anchor = ".".join(package[: len(package) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _package(name: str) -> dict[str, set[str]]:
    files = sorted((ROOT / "app" / name).rglob("*.py"))
    assert files, f"app/{name}/ is missing"
    return {str(path.relative_to(ROOT)): _read(path) for path in files}


def _read(path: Path) -> set[str]:
    return _imports(path.read_text(), path.relative_to(ROOT).parent.parts)


def _names(imported: set[str], package: str) -> list[str]:
    return sorted(m for m in imported if m == package or m.startswith(package + "."))


def _importing(name: str, package: str) -> dict[str, list[str]]:
    """The files of app/``name`` that import ``package`` (or a module of it), with what they name."""
    return {path: names for path, imported in _package(name).items() if (names := _names(imported, package))}


def test_flows_do_no_http_themselves():
    doing_http = _importing("flows", "httpx")
    assert not doing_http, f"HTTP belongs in app/outbound/: {doing_http}"


def test_outbound_imports_nothing_from_the_flows():
    upward = _importing("outbound", "app.flows")
    assert not upward, f"app/outbound/ must not depend on the flows that call it: {upward}"


def test_the_context_names_no_outbound_cache_by_way_of_a_flow():
    """The caches on the context come from app/outbound/ (the context <-> flows/issue circle is gone)."""
    imported = _read(ROOT / "app" / "context.py")
    assert "app.flows.issue" not in imported and "app.flows.jwks" not in imported
    assert "app.flows.cimd" not in imported and "app.flows.signin" not in imported


def test_the_reader_sees_imports_wherever_they_are():
    """Imports inside functions, under TYPE_CHECKING, and relative ones are all found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from app.flows.issue import mint\n"
        "def f():\n    import httpx\n"
        "from ..flows import claim\n"
    )
    found = _imports(source, ("app", "outbound"))
    assert _names(found, "httpx") == ["httpx"]
    assert _names(found, "app.flows") == ["app.flows", "app.flows.claim", "app.flows.issue", "app.flows.issue.mint"]
