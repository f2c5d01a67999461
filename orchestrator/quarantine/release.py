"""Release a quarantined component: put every file back exactly, restore its units, verify it.

Everything is checked before anything changes, so a refused release changes nothing:

- a quarantined copy must still match its manifest entry (content, mode, owner; symlink target);
- an original path that exists again must hold exactly what the manifest says (then it is left as
  it is: a crash after moving it back, or the operator restored it); with other content the release
  is refused, since moving the copy back would destroy the newer file.

Then: missing directories are recreated with their recorded mode and owner, files moved back and
verified against the manifest, ``systemctl daemon-reload``, units enabled and started as they were
before the quarantine, the component's probes run until they pass (or the settle policy gives up),
the manifest marked ``released``, the release appended to QUARANTINE.md and audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi
from orchestrator.audit.sink import AuditSink, log_quarantine
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.errors import QuarantineError
from orchestrator.model import ProbeResult
from orchestrator.notify.event import Emitter, Event, EventKind
from orchestrator.quarantine.isolate import iso, restore_units, utcnow
from orchestrator.quarantine.logbook import append_entry, release_entry
from orchestrator.quarantine.manifest import PathRecord, QuarantineRecord, Status
from orchestrator.quarantine.store import (
    DEFAULT_QUARANTINE_ROOT,
    LOG_NAME,
    active_record,
    check_name,
    check_root,
    write_record,
)
from orchestrator.retry import service_settle_policy
from orchestrator.systemd import UnitCommand, daemon_reload
from orchestrator.transport.base import Transport

#: Paths named in a refusal; the rest are counted.
_LISTED = 5


@dataclass(frozen=True)
class ReleaseResult:
    record: QuarantineRecord              # as written: status released
    restored: tuple[str, ...]             # moved back by this release
    already_in_place: tuple[str, ...]     # identical file found at the original path
    unit_commands: tuple[UnitCommand, ...]
    probes: tuple[ProbeResult, ...]       # the component's probes after the release

    @property
    def is_verified(self) -> bool | None:
        """True: units came back and every probe that could run passed; False: something failed;
        None: nothing to verify with (the component is not in the watch config, or no probe ran)."""
        failing = [p for p in self.probes if not p.ok and not p.is_unavailable]
        if failing or not all(c.succeeded for c in self.unit_commands):
            return False
        return True if any(p.ok for p in self.probes) else None

    @property
    def outcome(self) -> str:
        failed = [c.describe() for c in self.unit_commands if not c.succeeded]
        failed += [p.summary for p in self.probes if not p.ok and not p.is_unavailable]
        if failed:
            return "released, but not healthy: " + "; ".join(failed)
        return ("released and verified: its probes pass" if self.is_verified
                else "released; not verified (no probe could check it)")

    def as_dict(self) -> dict[str, object]:
        return {"component": self.record.component, "directory": self.record.directory,
                "restored": list(self.restored), "already_in_place": list(self.already_in_place),
                "units": [c.as_dict() for c in self.unit_commands],
                "probes": [{"probe": p.probe, "ok": p.ok, "unavailable": p.is_unavailable,
                            "summary": p.summary} for p in self.probes],
                "verified": self.is_verified, "outcome": self.outcome}


def release(
    transport: Transport,
    agent: AgentApi,
    name: str,
    *,
    audit: AuditSink,
    watch: WatchConfig | None = None,
    quarantine_root: str = DEFAULT_QUARANTINE_ROOT,
    log_path: str | None = None,
    now: Callable[[], dt.datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    notify: Emitter | None = None,
) -> ReleaseResult:
    """Undo the quarantine of ``name`` in force on the target (steps in the module docstring).

    ``watch`` supplies the component's probes for the verification; without it (or when the component
    is no longer watched) the release is not verified. ``notify`` is told of the release (a
    ``released`` event; it never raises).

    Raises:
        QuarantineError: ``name`` is not quarantined; a destination exists with other content; a
            quarantined copy is gone or altered; a directory cannot be recreated; a restored file does
            not match its manifest entry.
        TransportError: the target cannot be reached, or the agent failed.
        AuditError: the audit record cannot be written.
    """
    root, name = check_root(quarantine_root), check_name(name)
    record = active_record(agent, root, name)
    if record is None:
        raise QuarantineError(f"{name} is not quarantined on {transport.host}",
                              remedy="`vmrepair quarantine list` shows what is")
    to_move, in_place, missing_dirs = _plan(agent, record)
    _recreate_dirs(transport, missing_dirs)
    for path in to_move:
        agent.move_file(record.stored_path(path.path), path.path)
    _verify_restored(agent, record)
    daemon_reload(transport)
    commands = restore_units(transport, record.units)
    probes = _probe(transport, agent, watch, name, sleep)
    released = dataclasses.replace(record, status=Status.RELEASED, released_at=iso(now()))
    write_record(agent, released, expect_sha256=record.source_sha256)
    result = ReleaseResult(released, tuple(p.path for p in to_move), tuple(p.path for p in in_place),
                           commands, probes)
    append_entry(agent, log_path or f"{root}/{LOG_NAME}",
                 release_entry(released, released_at=released.released_at or "", restored=len(to_move)
                               + len(in_place), outcome=result.outcome))
    log_quarantine(audit, name, record.reason, released=True, directory=record.directory,
                   restored=len(to_move), verified=result.is_verified, outcome=result.outcome)
    if notify is not None:
        notify.emit(Event(EventKind.RELEASED, transport.host, f"{name} released from quarantine on "
                          f"{transport.host}: {result.outcome}", component=name,
                          details={"reason": record.reason, "directory": record.directory,
                                   "restored": len(to_move) + len(in_place), "verified": result.is_verified,
                                   "outcome": result.outcome}, is_audited=True))
    return result


def _plan(
    agent: AgentApi, record: QuarantineRecord
) -> tuple[list[PathRecord], list[PathRecord], list[PathRecord]]:
    """(files to move back, files already back, directories to recreate); refuses when anything is
    in the way."""
    moved = record.moved
    originals = agent.manifest([p.path for p in moved]).by_path() if moved else {}
    copies = agent.manifest([record.directory]).by_path()
    to_move: list[PathRecord] = []
    in_place: list[PathRecord] = []
    conflicts: list[PathRecord] = []
    lost: list[PathRecord] = []
    for path in moved:
        current = originals.get(path.path)
        if current is not None:
            (in_place if path.matches(current) else conflicts).append(path)
        elif path.matches(copies.get(record.stored_path(path.path))):
            to_move.append(path)
        else:
            lost.append(path)
    dirs = [p for p in record.paths if p.kind == "dir"]
    existing = agent.manifest([p.path for p in dirs]).by_path() if dirs else {}
    conflicts += [d for d in dirs if d.path in existing and existing[d.path].type != "dir"]
    if conflicts:
        raise QuarantineError(
            f"cannot release {record.component}: {_listed(conflicts)} exist(s) again with other "
            "content", remedy=f"move them away (or delete them) and run `vmrepair quarantine release "
            f"{record.component}` again; nothing was changed (the quarantined copies are in "
            f"{record.directory})")
    if lost:
        raise QuarantineError(
            f"cannot release {record.component}: the quarantined copies of {_listed(lost)} are gone "
            f"from {record.directory} or no longer match the manifest (content, mode or owner)",
            remedy="nothing was changed; put the originals back in the quarantine directory, or restore "
            "the component by hand and mark its manifest released")
    return to_move, in_place, [d for d in dirs if d.path not in existing]


def _listed(paths: list[PathRecord]) -> str:
    names = ", ".join(p.path for p in paths[:_LISTED])
    return names + (f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else "")


def _recreate_dirs(transport: Transport, missing: list[PathRecord]) -> None:
    # Parents first (sorted paths); the agent would create missing parents 0700, not as recorded.
    for path in missing:
        result = transport.run(["install", "-d", "-m", f"{path.mode:o}", "-o", str(path.uid), "-g",
                                str(path.gid), "--", path.path], timeout=30)
        if not result.succeeded:
            raise QuarantineError(f"cannot recreate directory {path.path}: "
                                  f"{result.stderr_text.strip()[-300:]}")


def _verify_restored(agent: AgentApi, record: QuarantineRecord) -> None:
    moved = record.moved
    current = agent.manifest([p.path for p in moved]).by_path() if moved else {}
    wrong = [p for p in moved if not p.matches(current.get(p.path))]
    if wrong:
        raise QuarantineError(f"released {record.component}, but {_listed(wrong)} do(es) not match the "
                              "manifest after moving back", remedy=f"compare with {record.manifest_path}")


def _probe(transport: Transport, agent: AgentApi, watch: WatchConfig | None, name: str,
           sleep: Callable[[float], None]) -> tuple[ProbeResult, ...]:
    if watch is None or name not in {c.name for c in watch.components}:
        return ()
    detector = Detector(watch, transport, agent)
    results: list[ProbeResult] = service_settle_policy(sleep=sleep)(detector.run_components, [name])
    return tuple(results)
