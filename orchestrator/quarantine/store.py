"""Where quarantines live on a target, and reading/writing their manifests through the agent.

Layout under the quarantine root (default ``/var/lib/vmrepair/quarantine``)::

    QUARANTINE.md                       the human-readable log (see :mod:`.logbook`)
    <component>/<stamp>/manifest.json   one quarantine (stamp: UTC, e.g. 20260101T120000Z)
    <component>/<stamp>/etc/nginx/...   the moved files, at their original absolute paths

Released quarantines keep their directory and manifest (status ``released``) as history. Component
names and stamps are matched by pattern, so other things under the root (the repair steps'
``<stamp>/<path>`` quarantines of single files) are never taken for a component's quarantine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
from collections.abc import Collection

from orchestrator.agent.api import AgentApi
from orchestrator.errors import QuarantineError
from orchestrator.quarantine.manifest import MANIFEST_NAME, QuarantineRecord, Status, parse_record

DEFAULT_QUARANTINE_ROOT = "/var/lib/vmrepair/quarantine"
LOG_NAME = "QUARANTINE.md"
#: The pattern config.yaml accepts for component names: no "/", no "..", nothing option-like.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
_STAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,3})?$")
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Manifests are root's alone: they list every quarantined path and its hash.
MANIFEST_MODE = 0o600


def check_root(root: str) -> str:
    """``root`` if it is an absolute, normalised directory other than ``/``.

    Raises:
        QuarantineError: it is not.
    """
    if not root.startswith("/") or posixpath.normpath(root) != root or root == "/":
        raise QuarantineError(f"quarantine root {root!r} must be an absolute, normalised path below /")
    return root


def check_name(name: str) -> str:
    """``name`` if it can be a component name (and so a directory name).

    Raises:
        QuarantineError: it cannot.
    """
    if not _NAME_RE.match(name):
        raise QuarantineError(f"{name!r} is not a component name",
                              remedy="component names are lower-case letters, digits, '-' and '_'")
    return name


def new_stamp(moment: dt.datetime, taken: Collection[str]) -> str:
    """A directory name for a quarantine beginning at ``moment``, not in ``taken`` (same second)."""
    base = moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    stamp, suffix = base, 1
    while stamp in taken:
        suffix += 1
        stamp = f"{base}-{suffix}"
    return stamp


def stamps_of(agent: AgentApi, root: str, name: str) -> set[str]:
    """Every stamp directory of ``name`` (released ones included).

    Raises:
        TransportError: the agent failed.
    """
    base = f"{root}/{name}"
    return {posixpath.basename(e.path) for e in agent.manifest([base]).entries
            if e.type == "dir" and posixpath.dirname(e.path) == base and _STAMP_RE.match(
                posixpath.basename(e.path))}


def load_records(agent: AgentApi, root: str, *, name: str | None = None) -> list[QuarantineRecord]:
    """Every quarantine under ``root`` (of ``name`` only, when given), oldest first.

    Raises:
        QuarantineError: a manifest is unusable.
        TransportError: the agent failed.
    """
    base = root if name is None else f"{root}/{name}"
    records = []
    for entry in agent.manifest([base]).entries:
        relative = entry.path[len(root) + 1:].split("/") if entry.path.startswith(root + "/") else []
        if (entry.type != "file" or len(relative) != 3 or relative[2] != MANIFEST_NAME
                or not _NAME_RE.match(relative[0]) or not _STAMP_RE.match(relative[1])):
            continue
        data = agent.read_file(entry.path, max_bytes=MAX_MANIFEST_BYTES)
        record = parse_record(data, manifest_path=entry.path)
        if record.component != relative[0]:
            raise QuarantineError(f"quarantine manifest {entry.path} names component "
                                  f"{record.component!r}, not {relative[0]!r}")
        records.append(record)
    return sorted(records, key=lambda r: (r.quarantined_at, r.directory))


def list_quarantined(
    agent: AgentApi, *, quarantine_root: str = DEFAULT_QUARANTINE_ROOT, include_released: bool = False
) -> list[QuarantineRecord]:
    """The quarantines on the agent's host, oldest first: those in force (``quarantined``, and
    ``quarantining`` ones a crash interrupted), plus released ones when asked.

    Raises:
        QuarantineError: the root is invalid or a manifest is unusable.
        TransportError: the agent failed.
    """
    records = load_records(agent, check_root(quarantine_root))
    return [r for r in records if include_released or r.status is not Status.RELEASED]


def active_record(agent: AgentApi, root: str, name: str) -> QuarantineRecord | None:
    """The quarantine of ``name`` in force, if any.

    Raises:
        QuarantineError: more than one is in force (someone edited the manifests), or one is unusable.
        TransportError: the agent failed.
    """
    active = [r for r in load_records(agent, root, name=name) if r.status is not Status.RELEASED]
    if len(active) > 1:
        raise QuarantineError(f"{name} has {len(active)} quarantines in force: "
                              f"{', '.join(r.directory for r in active)}",
                              remedy="keep one: set the others' manifest status to \"released\" by hand")
    return active[0] if active else None


def write_record(agent: AgentApi, record: QuarantineRecord, *, expect_sha256: str | None) -> str:
    """Write ``record``'s manifest (atomically: the agent writes a temp file, fsyncs and renames) and
    return its sha256, the precondition of the next write.

    Raises:
        AgentFailedError: the manifest changed since ``expect_sha256`` (someone else is at work).
        TransportError: the agent failed.
    """
    data = record.to_json()
    agent.write_file(record.manifest_path, data, mode=MANIFEST_MODE, uid=0, gid=0,
                     expect_sha256=expect_sha256)
    return hashlib.sha256(data).hexdigest()

