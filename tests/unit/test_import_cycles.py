"""No import cycle anywhere under ``orchestrator/``: a cycle means two modules cannot be understood (or
changed) apart, which is exactly what made the old pipeline hard to change.

Imports are read statically with :mod:`ast`. Module-level imports count, including those under
``if TYPE_CHECKING:`` (a type-only cycle is still a cycle for a reader); imports inside functions are
the deliberate lazy ones (libvirt, paramiko) and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator

PACKAGE_DIR = Path(orchestrator.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules named by imports that run at import time (or under TYPE_CHECKING)."""
    found: set[str] = set()
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If | ast.Try):
            nodes.extend(node.body)
            nodes.extend(getattr(node, "orelse", []))
            for handler in getattr(node, "handlers", []):
                nodes.extend(handler.body)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    sources = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py") if "remote" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        imports = _top_level_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        # ``from orchestrator.pipeline import driver`` names a module; ``import x.y`` imports x too,
        # but a package's __init__ importing its own submodules is the package's face, not a cycle.
        graph[name] = {m for m in imports if m in sources and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def _without_package_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package ``p/__init__.py`` re-exporting ``p.x`` is not an arrow *into* ``p`` from ``p.x``'s
    siblings: drop the edge from a module to its own package's ``__init__`` (Python resolves
    ``from p.x import y`` without running into a cycle when ``p`` is already initialising)."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_there_is_no_import_cycle_under_orchestrator() -> None:
    cycle = find_cycle(_without_package_faces(import_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_the_pipeline() -> None:
    graph = import_graph()
    assert "orchestrator.pipeline.context" in graph["orchestrator.pipeline.driver"]
