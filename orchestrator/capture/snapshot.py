"""Pack the affected components' files on the target (agent ``pack``), download the archive, and record
the manifest, placeholders for big files, package versions and unit states in the session.

The target keeps running: nothing is stopped, only read.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import dpkg
from orchestrator.agent.api import DiskUsage, Manifest, PackResult, Placeholder
from orchestrator.agent.client import RemoteAgent
from orchestrator.errors import TransportError
from orchestrator.facts import TargetFacts
from orchestrator.fsutil import ensure_private_dir
from orchestrator.model import Component, IssueKind
from orchestrator.session.store import Session, cap_text
from orchestrator.systemd import parse_show_one, show_argv
from orchestrator.transport.base import CommandResult, Transport


@dataclass(frozen=True)
class Capture:
    tar: Path
    paths: tuple[str, ...]
    manifest: Manifest
    placeholders: tuple[Placeholder, ...]
    packages: dict[str, str | None] = field(default_factory=dict)
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    disk: DiskUsage | None = None
    #: What the target is made of (None when a caller did not ask: unit tests, old sessions).
    facts: TargetFacts | None = None
    #: Paths captured by their own entry only (mode, owner, type, or missing), never what is below
    #: them: the directories a service writes to (:func:`meta_paths`). Their entries are in
    #: ``manifest``; nothing of them is in the tar.
    meta_paths: tuple[str, ...] = ()
    #: Files of the components' packages that ``dpkg --verify`` reports missing on the target (not
    #: conffiles): absences outside the captured roots that the VM must share (a deleted binary).
    package_missing: tuple[str, ...] = ()
    #: ``watch.ignore_paths`` entries below a captured directory: left out of the capture with
    #: everything below them, and out of every manifest of the captured paths read in the VM, so an
    #: ignored file is never imported, compared, or written by a fix package.
    excluded: tuple[str, ...] = ()

    @property
    def placeholder_paths(self) -> set[str]:
        return {p.path for p in self.placeholders}

    def as_dict(self) -> dict[str, Any]:
        return {
            "tar": str(self.tar), "paths": list(self.paths),
            "files": [asdict(e) for e in self.manifest.entries], "missing": list(self.manifest.missing),
            "placeholders": [{"path": p.path, "size": p.size, "sha256": p.sha256} for p in self.placeholders],
            "packages": self.packages, "units": self.units,
            "disk": asdict(self.disk) if self.disk else None,
            "facts": self.facts.as_dict() if self.facts else None, "meta_paths": list(self.meta_paths),
            "package_missing": list(self.package_missing), "excluded": list(self.excluded),
        }


#: Issues a unit's enablement can cause: its mask and wants links are captured (a repair that
#: unmasks or enables the unit changes them, and only captured paths reach the fix package).
UNIT_STATE_KINDS = frozenset({IssueKind.UNIT_INACTIVE})
#: Issues a missing or mis-owned state directory causes (226/NAMESPACE for a ReadWritePaths= one).
STATE_DIR_KINDS = frozenset({IssueKind.PERMISSIONS, IssueKind.PATH_MISSING, IssueKind.UNIT_FAILED})
ETC_UNITS = "/etc/systemd/system"
#: The target whose wants directory ``systemctl enable`` links a service into, for nearly every
#: service (``WantedBy=multi-user.target``); other targets are not guessed.
DEFAULT_WANTS = "multi-user.target.wants"


def capture_paths(components: list[Component], kinds: set[IssueKind]) -> list[str]:
    """The paths to capture: config, unit and data paths; log paths only for disk-space issues
    (they are what a disk repair may act on, and they are mostly placeholders); for unit-state
    issues the units' mask and wants links (:func:`unit_link_paths`)."""
    paths: list[str] = []
    for comp in components:
        paths += comp.all_paths
        if kinds & {IssueKind.DISK_FULL, IssueKind.INODES_FULL}:
            paths += comp.log_paths
    paths += unit_link_paths(components, kinds)
    return list(dict.fromkeys(paths))


def unit_link_paths(components: list[Component], kinds: set[IssueKind]) -> list[str]:
    """``/etc/systemd/system/UNIT`` (a mask is a link to /dev/null there) and the unit's link in
    :data:`DEFAULT_WANTS` (enablement), for unit-state issues. Each is one link, or missing."""
    if not kinds & UNIT_STATE_KINDS:
        return []
    units = [u for comp in components for u in comp.units]
    return [p for u in units for p in (f"{ETC_UNITS}/{u}", f"{ETC_UNITS}/{DEFAULT_WANTS}/{u}")]


def meta_paths(components: list[Component], kinds: set[IssueKind], subjects: Sequence[str] = ()) -> list[str]:
    """Paths captured by their own entry only: the components' writable and own log directories (and
    the issues' subjects among them) for issues a state directory causes. Never walked: a database's state
    directory holds gigabytes that no repair of its mode or owner needs to read."""
    if not kinds & STATE_DIR_KINDS:
        return []
    writable = [p for comp in components for p in (*comp.writable_paths, *comp.log_dirs)]
    named = [s for s in subjects if s in writable]
    return list(dict.fromkeys([*named, *writable]))


#: The unit state recorded with a capture (evidence of how the target's services were).
UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState")


def capture_components(
    session: Session,
    transport: Transport,
    agent: RemoteAgent,
    components: list[Component],
    kinds: set[IssueKind],
    *,
    max_file_bytes: int,
    facts: TargetFacts | Future[TargetFacts] | None = None,
    extra_paths: Sequence[str] = (),
    subjects: Sequence[str] = (),
    ignored: Sequence[str] = (),
    verify: Verify | None = None,
) -> Capture:
    """Pack and record; ``facts`` (read by the caller, perhaps still being read) are recorded with the
    capture; ``subjects`` are the issues' subjects (a writable directory a probe named); what
    ``ignored`` (``watch.ignore_paths``) covers below a captured directory is left out; ``verify``
    answers ``dpkg --verify`` of packages (the detection's, reused while nothing changed; by default
    dpkg runs).

    Raises: AgentError / TransportError when the target cannot be read; StateError on local disk."""
    directory = ensure_private_dir(session.dir / "capture")
    # extra_paths: the application's own code (facts.application_roots), captured like data.
    paths = list(dict.fromkeys([*capture_paths(components, kinds), *extra_paths]))
    excluded = tuple(sorted(x for x in ignored if any(x.startswith(p.rstrip("/") + "/") for p in paths)))
    packed = agent.pack(paths, max_file_bytes=max_file_bytes, exclude=excluded)
    meta = [p for p in meta_paths(components, kinds, subjects) if not _covered(p, paths)]
    if meta:
        packed = _with_meta(packed, agent.manifest(meta, recursive=False))
    local_tar = directory / "files.tar"
    try:
        agent.fetch(packed.remote_tar, local_tar)
    finally:
        with contextlib.suppress(TransportError):
            agent.cleanup()
    local_tar.chmod(0o600)
    if isinstance(facts, Future):
        facts = facts.result()
    packages: dict[str, str | None] = {}
    wanted = sorted({p for c in components for p in c.packages})
    if wanted and facts is not None and facts.packages:
        # The facts already read the whole package database: no second dpkg-query on the target.
        for name in wanted:
            known = facts.package(name)
            packages[name] = known.version if known is not None and known.is_installed else None
    elif wanted:
        result = transport.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *wanted], timeout=60)
        for line in result.stdout_text.splitlines():
            name, _, version = line.partition("\t")
            packages[cap_text(name, 128)] = cap_text(version, 128) or None
        for name in wanted:
            packages.setdefault(name, None)
    units: dict[str, dict[str, str]] = {}
    # Sockets too: a service whose socket is disabled or stopped cannot start (rsyslog without
    # syslog.socket), so the VM must share the sockets' states as well.
    for unit in sorted({u for c in components for u in (*c.units, *c.sockets)}):
        shown = transport.run(show_argv(unit, properties=UNIT_PROPERTIES), timeout=30)
        units[unit] = parse_show_one(shown.stdout_text, UNIT_PROPERTIES).properties
    disk = agent.disk_usage("/") if kinds & {IssueKind.DISK_FULL, IssueKind.INODES_FULL} else None
    missing = packaged_missing(transport, [n for n, v in packages.items() if v], kinds, verify=verify)
    capture = Capture(local_tar, tuple(paths), packed.manifest, packed.placeholders, packages, units, disk,
                      facts, tuple(meta), missing, excluded)
    data = capture.as_dict()
    data["placeholder_samples"] = {
        p.path: {"head": cap_text(p.head, 512), "tail": cap_text(p.tail, 512)} for p in packed.placeholders
    }
    session.write_json("capture", data)
    session.event("capture", "captured", files=len(packed.manifest.entries),
                  placeholders=len(packed.placeholders), tar_bytes=local_tar.stat().st_size,
                  target=facts.summary() if facts else "")
    return capture


#: ``dpkg --verify -- names``: the answer, or None when dpkg is not there.
Verify = Callable[[Sequence[str]], CommandResult | None]

#: Issues a deleted packaged file can cause (the unit cannot exec, the config test cannot run).
PACKAGE_FILE_KINDS = frozenset({IssueKind.PACKAGE_BROKEN, IssueKind.UNIT_FAILED, IssueKind.CONFIG_INVALID})
#: More missing files than this is a package half removed: mirrored no further (the layer and a
#: reinstall deal with it), and no hostile answer can make the VM delete thousands of files.
MAX_PACKAGE_MISSING = 200


def packaged_missing(
    transport: Transport, installed: Sequence[str], kinds: set[IssueKind], *, verify: Verify | None = None,
) -> tuple[str, ...]:
    """The non-conffile files of ``installed`` that ``dpkg --verify`` says are missing on the target
    (each a canonical absolute path), for the issues such an absence causes. Read-only; an answer
    dpkg could not give is no absence.

    Raises:
        TransportError: the target cannot be reached.
    """
    if not installed or not kinds & PACKAGE_FILE_KINDS:
        return ()
    names = [n for n in installed if dpkg.is_package_name(n)]
    result = verify(names) if verify is not None else transport.run(["dpkg", "--verify", "--", *names],
                                                                     timeout=120)
    if result is None:
        return ()
    found = [f.path for f in dpkg.parse_verify(result.stdout_text) if f.is_missing and not f.is_conffile]
    canonical = [p for p in found if posixpath.normpath(p) == p and p.startswith("/") and p != "/"]
    return tuple(dict.fromkeys(canonical))[:MAX_PACKAGE_MISSING]


def _covered(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _with_meta(packed: PackResult, meta: Manifest) -> PackResult:
    """The pack's manifest with the meta paths' own entries (and absences) added."""
    manifest = Manifest(packed.manifest.entries + meta.entries, packed.manifest.missing + meta.missing)
    return replace(packed, manifest=manifest)
