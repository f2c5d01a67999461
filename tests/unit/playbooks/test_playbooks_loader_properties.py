"""Property: the playbook loader raises nothing but PlaybookError, whatever the file holds (issue 13):
arbitrary bytes, YAML-ish text, and shipped playbooks with a random part replaced by random data."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import PlaybookError
from orchestrator.playbooks.loader import load_playbook
from orchestrator.resources import shipped_playbooks_dir

SHIPPED = [yaml.safe_load(path.read_text()) for path in sorted(shipped_playbooks_dir().glob("*.yaml"))]
KEYS = ["name", "strategies", "steps", "run", "rules", "when", "diagnostic", "matches", "extract",
        "for_causes", "effectiveness", "applies_to", "components", "kinds"]
FRAGMENTS = ["\n", "  ", "- ", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!str ", "'", '"', "#",
             "---\n", "{subject}", "{x", "}", "'*'", "[/x]", "-x", "\\", "^(", "(?P<", "1e999", ".nan", "~",
             *KEYS]

leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) \
    | st.sampled_from(KEYS)
anything = st.recursive(
    leaf,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_playbook(draw: st.DrawFn) -> object:
    doc = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        replacement = draw(anything)
        if not path:
            return replacement
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return doc


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "playbook.yaml"
        path.write_bytes(data)
        try:
            load_playbook(path)
        except PlaybookError as exc:
            assert str(path) in exc.message


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_playbook_error(data: bytes) -> None:
    _load(data)


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=60).map("".join))
def test_yamlish_text_gives_a_playbook_error(text: str) -> None:
    _load(text.encode())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_playbook())
def test_a_shipped_playbook_with_random_damage_loads_or_gives_a_playbook_error(doc: object) -> None:
    _load(yaml.safe_dump(doc, allow_unicode=True).encode())
