"""A YAML loader for files people and attackers write: ``yaml.SafeLoader`` that refuses what SafeLoader
lets through.

- **Duplicate keys**: SafeLoader keeps the last one silently, so a config that says ``policy: ask``
  twice may mean the opposite of what its reader sees. Refused, naming both lines. Keys brought in by
  a merge (``<<: *base``) may still be overridden: that is what merges are for.
- **Deep nesting**: the composer recurses once per level, so ``[[[[...`` a few thousand deep raises
  ``RecursionError`` (a traceback, not a message). Refused past :data:`MAX_DEPTH`.
- **Alias bombs**: aliases share one Python object, so loading "a billion laughs" is cheap, but
  validating or rendering it walks every repetition (minutes and gigabytes). Every node is counted
  with what its aliases repeat, and the document is refused past :data:`MAX_EXPANDED_NODES`.
  An alias inside the node it names (``&a [*a]``) would build a cyclic object: refused too.

Each refusal is a ``yaml.YAMLError`` with a mark, so callers render it like any malformed YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.events import AliasEvent, Event
from yaml.nodes import MappingNode, Node, SequenceNode

#: Config and playbook files nest a handful of levels; anything near this is not a hand-written file.
MAX_DEPTH = 64
#: Nodes of a document with every alias expanded. A 256 KiB file without aliases has fewer.
MAX_EXPANDED_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, deep nesting, alias bombs and cyclic aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        #: id(node) -> how many nodes it stands for with its aliases expanded (finished nodes only).
        self._expanded: dict[int, int] = {}

    def _next_event(self) -> Event:
        # PyYAML's stubs leave peek_event untyped; every event it returns is an Event.
        peek: Callable[[], Event] = self.peek_event
        return peek()

    def _next_mark(self) -> Mark | None:
        # The pure-Python parser (the only one a Python subclass runs) makes yaml.error.Mark objects.
        mark = self._next_event().start_mark
        return mark if isinstance(mark, Mark) else None

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self._next_event()
            target = self.anchors.get(getattr(event, "anchor", None))
            if target is not None and id(target) not in self._expanded:
                raise ComposerError(None, None, f"alias *{getattr(event, 'anchor', '')} refers to the node "
                                    "that contains it", self._next_mark())
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                    self._next_mark())
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        size = 1 + sum(self._expanded.get(id(child), 1) for child in _children(node))
        if size > MAX_EXPANDED_NODES:
            raise ComposerError(None, None, f"the document expands to more than {MAX_EXPANDED_NODES} "
                                "values once aliases are followed", node.start_mark)
        self._expanded[id(node)] = size
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):  # SafeLoader refuses anything else with its own message
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse_duplicate_keys(loader: StrictLoader, node: MappingNode) -> None:
    """Runs before the merge keys are flattened in, so only keys written in this mapping count."""
    seen: dict[object, Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # unhashable: SafeLoader refuses it with its own message
            continue
        if first is not key_node:
            raise ConstructorError(None, None, f"duplicate key {key!r} (first at line "
                                   f"{first.start_mark.line + 1})", key_node.start_mark)


def parse(text: str) -> object:
    """The single document in ``text``. Raises: yaml.YAMLError."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
