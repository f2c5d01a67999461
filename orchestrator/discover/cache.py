"""Discovery results kept in the state store, per target, with the fingerprint they were read under.

The fingerprint is a hash of the unit directories' entries (path, type, size, mtime, link) and of the
package database's status file: adding, editing or removing a unit file, a drop-in or a package
changes it, and one agent call reads it (a full discovery is five or more commands). An entry older
than :data:`MAX_AGE_S` is refreshed anyway: a service started by hand changes no file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi
from orchestrator.components.record import from_json, to_json
from orchestrator.errors import StateError
from orchestrator.model import Component
from orchestrator.state.db import StateDb

FINGERPRINT_PATHS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
                     "/var/lib/dpkg/status")
MAX_AGE_S = 3600.0
#: Part of the fingerprint: raise it when discovery would build other components from the same
#: target, so an upgraded vmrepair does not reuse what the older one built.
DISCOVERY_VERSION = 4


def fingerprint(agent: AgentApi, configured_units: Iterable[str]) -> str:
    """The target's unit files and package database, and the configured units asked about.

    Raises:
        TransportError/AgentError: the target cannot be read.
    """
    # Without digests: the entries' metadata is all the fingerprint uses, and hashing every unit file
    # and dpkg's status file took 1.7 s under TCG, before every detection.
    manifest = agent.manifest(list(FINGERPRINT_PATHS), digests=False)
    digest = hashlib.sha256(f"v{DISCOVERY_VERSION}\0".encode()
                            + "\0".join(sorted(configured_units)).encode() + b"\n")
    for e in sorted(manifest.entries, key=lambda e: e.path):
        digest.update(f"{e.path}\0{e.type}\0{e.size}\0{e.mtime:.3f}\0{e.link or ''}\n".encode())
    digest.update("\0".join(sorted(manifest.missing)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Cached:
    fingerprint: str
    components: tuple[Component, ...]
    notes: tuple[str, ...]
    #: Configured units systemd knows on the target (a configured component without one is absent).
    present: frozenset[str]
    at: float

    def is_fresh(self, fingerprint: str, *, now: float | None = None) -> bool:
        age = (time.time() if now is None else now) - self.at
        return fingerprint == self.fingerprint and 0 <= age < MAX_AGE_S


def load(db: StateDb, target: str) -> Cached | None:
    """The cached discovery of ``target``; None when there is none or it is unreadable (it is only a
    cache: discovery runs again).

    Raises:
        StateError: the store cannot be read.
    """
    rows = db.query("SELECT fingerprint, components, notes, present, at FROM discovery WHERE target = ?",
                    (target,))
    if not rows:
        return None
    row = rows[0]
    try:
        components = from_json(json.loads(str(row[1])), source=f"discovery cache of {target}")
        notes, present = json.loads(str(row[2])), json.loads(str(row[3]))
    except (StateError, ValueError):
        return None
    if not isinstance(notes, list) or not isinstance(present, list):
        return None
    return Cached(str(row[0]), tuple(components), tuple(str(n) for n in notes),
                  frozenset(str(u) for u in present), float(row[4]))


def store(db: StateDb, target: str, entry: Cached) -> None:
    """Raises: StateError: the store cannot be written."""
    with db.write() as tx:
        tx.execute("INSERT OR REPLACE INTO discovery (target, fingerprint, components, notes, present, at)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (target, entry.fingerprint, json.dumps([to_json(c) for c in entry.components]),
                    json.dumps(list(entry.notes)), json.dumps(sorted(entry.present)), entry.at))
