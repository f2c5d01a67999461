"""Reading a session directory for the report, tolerating whatever state a run left it in.

A report is most needed after a run went wrong, so nothing here raises for a missing, truncated or
malformed file: :meth:`SessionFiles.load` says which it was, and the section shows that instead.

Per-component stage files are named ``<stage>-<component>.json`` (``attempts-nginx.json``); the same
stage without a suffix (``attempts.json``) is read as the session's only component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.session.evidence import Evidence
from orchestrator.session.jsonfile import read_json_file

#: Evidence with one file per repaired component (the names the pipeline writes), longest names first
#: so the alternation picks them.
COMPONENT_STAGES = tuple(sorted((e.value for e in Evidence), key=len, reverse=True))
_COMPONENT_FILE = re.compile(rf"^({'|'.join(map(re.escape, COMPONENT_STAGES))})-(?P<component>.+)\.json$")
#: Larger JSON files are not parsed: the report must render quickly even from a runaway session.
MAX_JSON_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Loaded:
    """A JSON file's content, or why there is none (``missing`` is True when it does not exist)."""

    data: Any = None
    error: str = ""
    missing: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and not self.missing


class SessionFiles:
    """The JSON files of one session directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def load(self, name: str) -> Loaded:
        path = self.dir / f"{name}.json"
        try:
            # Bounded and non-blocking: a FIFO or a huge or deeply nested file says why, never hangs.
            return Loaded(read_json_file(path, max_bytes=MAX_JSON_BYTES))
        except StateError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return Loaded(missing=True)
            if exc.message.startswith("cannot read: "):
                return Loaded(error=f"cannot read {path.name}: {exc.message.removeprefix('cannot read: ')}")
            return Loaded(error=f"{path.name} is {exc.message}")

    def stage(self, stage: str, component: str) -> Loaded:
        """``<stage>-<component>.json``, or ``<stage>.json`` for the unnamed component ``""``."""
        return self.load(f"{stage}-{component}" if component else stage)

    def components(self, declared: list[str]) -> list[str]:
        """Components with stage files: ``declared`` (session.json order) first, then any other found
        on disk, then ``""`` when unsuffixed stage files exist."""
        found: dict[str, None] = dict.fromkeys(declared)
        try:
            names = sorted(p.name for p in self.dir.iterdir())
        except OSError:
            names = []
        for name in names:
            match = _COMPONENT_FILE.match(name)
            if match:
                found.setdefault(match["component"])
        if any(f"{stage}.json" in names for stage in COMPONENT_STAGES):
            found.setdefault("")
        return list(found)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def first(mapping: dict[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present (and not None) in ``mapping``."""
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None
