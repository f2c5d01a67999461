"""Components in quarantine on this host, read from the local quarantine directory.

The quarantine of a component lives on its target (:mod:`orchestrator.quarantine.store`); the
daemon's own target is ``local``, whose quarantine directory is ``settings.quarantine_dir``, so
that is what metrics read, directly from the file system (no agent: a scrape must stay cheap and
never start a process). Quarantines of remote targets are not visible here; `vmrepair quarantine
list --target` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import QuarantineError, StateError
from orchestrator.quarantine.manifest import MANIFEST_NAME, Status, parse_record
from orchestrator.quarantine.store import MAX_MANIFEST_BYTES, check_name
from orchestrator.session.jsonfile import read_regular_file
from orchestrator.timestamps import parse_timestamp


@dataclass(frozen=True)
class Quarantined:
    component: str
    #: When the quarantine began (Unix time); None when the manifest's time does not parse.
    since: float | None


def load_quarantined(root: Path) -> tuple[list[Quarantined], list[str]]:
    """The components whose quarantine is in force (``quarantining`` or ``quarantined``), and a
    reason for each manifest that cannot be read. The earliest quarantine in force of a component
    wins (there should be one)."""
    if not root.is_dir():
        return [], []
    found: dict[str, Quarantined] = {}
    problems: list[str] = []
    for manifest in sorted(root.glob(f"*/*/{MANIFEST_NAME}")):
        component = manifest.parent.parent.name
        try:
            check_name(component)
        except QuarantineError:
            continue  # not a component's quarantine (a repair step's single-file one, say)
        try:
            data = read_regular_file(manifest, MAX_MANIFEST_BYTES)
            record = parse_record(data, manifest_path=str(manifest))
        except (StateError, QuarantineError) as exc:
            problems.append(f"{manifest}: {exc.message}")
            continue
        if record.status is Status.RELEASED or record.component != component:
            continue
        moment = parse_timestamp(record.quarantined_at)
        since = None if moment is None or moment.tzinfo is None else moment.timestamp()
        if component not in found or (since or 0) < (found[component].since or 0):
            found[component] = Quarantined(component, since)
    return sorted(found.values(), key=lambda q: q.component), problems
