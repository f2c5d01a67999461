"""``config.yaml.example``: every key of ``config.yaml`` with its default and its documentation,
generated from the models (installed as ``/etc/vmrepair/config.yaml.example``).

The file is a complete configuration commented out: every line starts with one ``#``. Removing that
first ``#`` from a key's line (and its section's line) sets it; removing it from every line gives a
valid file that sets every key to its default (a unit test loads it so). Documentation lines become
YAML comments then (``## ...`` and ``#  # ...``). A section that is off by default (``null``) or a
list of entries shows an example entry, doubly commented so it stays a comment.
"""

from __future__ import annotations

import json
import textwrap
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from orchestrator.config.fielddocs import field_docs, is_list, model_doc, models_in
from orchestrator.config.settings import ConfigFile

EXAMPLE_FILE = "config.yaml.example"
WIDTH = 100
#: Shown for a key that has no default (only inside example entries, which stay comments).
REQUIRED = "<required>"
HEADER = """\
vmrepair configuration: /etc/vmrepair/config.yaml (or the file VMREPAIR_CONFIG names).

Every key is shown with its default. To set one, remove the first '#' of its line and of the line
of each section above it. Drop-ins in /etc/vmrepair/config.d/*.yaml (config_dropin_dir) are merged
over this file in lexical order. Check with `vmrepair config check`, see the effective values and
where each comes from with `vmrepair config show`. JSON schema: config.schema.json beside this file.
Generated from the code by `python -m orchestrator.config.schema_export`; do not edit by hand."""


def render_example() -> str:
    """The text of ``config.yaml.example``."""
    body = [f"# {line}".rstrip() for line in HEADER.splitlines()]
    body.append("")
    body += _render(ConfigFile, defaults(ConfigFile), 0, docs=True)
    return "\n".join(f"#{line}" if line else "" for line in body) + "\n"


def defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON form of ``model``'s defaults; a field without a default is :data:`REQUIRED`."""
    try:
        dumped: dict[str, Any] = model().model_dump(mode="json")
    except ValidationError:
        return {name: REQUIRED if info.is_required()
                else to_jsonable_python(info.get_default(call_default_factory=True))
                for name, info in model.model_fields.items()}
    return dumped


def _render(model: type[BaseModel], values: dict[str, Any], indent: int, *, docs: bool) -> list[str]:
    pad = " " * indent
    documented = field_docs(model) if docs else {}
    lines: list[str] = []
    for name, info in model.model_fields.items():
        subs = models_in(info.annotation)
        value = values.get(name, REQUIRED)
        doc = documented.get(name) or (model_doc(subs[0]) if docs and subs else "")
        if indent == 0 and lines and (doc or subs):
            lines.append("")
        if doc:
            lines += [f"{pad}# {line}" for line in textwrap.wrap(doc, max(40, WIDTH - indent - 4))]
        keyed = is_mapping(info.annotation)
        if subs and isinstance(value, dict) and not keyed:  # a section: its keys with their defaults
            lines.append(f"{pad}{name}:")
            lines += _render(subs[0], value, indent + 2, docs=docs)
            continue
        lines.append(f"{pad}{name}: {_scalar(value)}")
        # null by default, a list or a mapping of entries: an example entry of each kind, commented.
        for sub in subs:
            lines += [f"{pad}# {line}".rstrip()
                      for line in _example(name, sub, as_list=is_list(info.annotation), keyed=keyed)]
    return lines


def _example(name: str, model: type[BaseModel], *, as_list: bool, keyed: bool) -> list[str]:
    entry = _render(model, defaults(model), 4 if as_list or keyed else 2, docs=False)
    if as_list and entry:
        entry[0] = "  - " + entry[0][4:]
    if keyed:   # a mapping of named entries (notify.channels): one under a placeholder name
        entry = ["  <name>:", *entry]
    return ["for example:", f"{name}:", *entry]


def is_mapping(annotation: object) -> bool:
    """Whether the annotation is a ``dict`` (of named entries, such as ``notify.channels``)."""
    return typing.get_origin(annotation) is dict


def _scalar(value: object) -> str:
    # JSON is YAML: quoting, lists and null come out right without a YAML emitter's document markers.
    return REQUIRED if value == REQUIRED else json.dumps(value)
