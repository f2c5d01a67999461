"""The JSON schema of ``config.yaml`` (for editors and `vmrepair config check`'s readers), generated
from :class:`~orchestrator.config.settings.ConfigFile` like the playbook schema, with every key's
documentation (:mod:`orchestrator.config.fielddocs`).

Shipped as package data with the commented example beside it; a unit test fails when either is stale.
Regenerate both with ``python -m orchestrator.config.schema_export`` (from a source checkout).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from orchestrator.config.example import EXAMPLE_FILE, render_example
from orchestrator.config.fielddocs import field_docs, models_in
from orchestrator.config.settings import ConfigFile
from orchestrator.resources import shipped_config_dir

SCHEMA_FILE = "config.schema.json"
REGENERATE = "python -m orchestrator.config.schema_export"


def export_schema() -> dict[str, Any]:
    """The JSON schema of config.yaml, each property carrying its key's documentation."""
    schema = ConfigFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vmrepair config.yaml"
    for model in all_models():
        target = schema if model is ConfigFile else schema.get("$defs", {}).get(model.__name__)
        if target is None:
            continue
        properties = target.get("properties", {})
        for name, doc in field_docs(model).items():
            if name in properties:
                properties[name].setdefault("description", doc)
    return schema


def render_schema() -> str:
    """:func:`export_schema` as the exact text of the shipped file."""
    return json.dumps(export_schema(), indent=2, sort_keys=True) + "\n"


def all_models(root: type[BaseModel] = ConfigFile) -> list[type[BaseModel]]:
    """``root`` and every model below it, each once, in the order of first appearance."""
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        model = todo.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            todo += models_in(info.annotation)
    return seen


def main() -> int:
    """Write the schema and the example into the shipped directory (``etc/`` of a checkout)."""
    directory = shipped_config_dir()
    (directory / SCHEMA_FILE).write_text(render_schema())
    (directory / EXAMPLE_FILE).write_text(render_example())
    sys.stdout.write(f"wrote {directory / SCHEMA_FILE} and {directory / EXAMPLE_FILE}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
