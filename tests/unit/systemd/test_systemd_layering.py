"""orchestrator.systemd sits low: it may import only the transport package, errors and the stdlib."""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator.systemd

ALLOWED = ("orchestrator.transport", "orchestrator.errors", "orchestrator.systemd")


def test_systemd_imports_nothing_above_it() -> None:
    package = Path(orchestrator.systemd.__file__).parent
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("orchestrator"):
                    assert name.startswith(ALLOWED), f"{module.name} imports {name}"
