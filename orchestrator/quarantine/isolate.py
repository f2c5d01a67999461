"""Quarantine a component: stop and disable its units, move its config and unit files aside.

Order, chosen so every crash leaves something a release can undo:

1. refuse what must not be isolated (see :func:`quarantine_component`), record the units' state;
2. write the manifest with status ``quarantining``: every path to move, the units' prior state;
3. stop, then disable the units (on failure: start/enable them again, delete the manifest, refuse);
4. move each file and symlink to ``<root>/<name>/<stamp>/<path>`` (the agent keeps content, mode,
   owner and times; directories stay where they are);
5. ``systemctl daemon-reload``, so systemd forgets the moved unit files;
6. rewrite the manifest (``quarantined``) from what actually arrived, append to QUARANTINE.md, audit.

Only this component's units are touched: the other services keep running.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

from orchestrator.agent.api import AgentApi
from orchestrator.audit.sink import AuditSink, log_error, log_quarantine
from orchestrator.components.config import WatchConfig
from orchestrator.detect.units import show_unit
from orchestrator.errors import QuarantineError, TransportError
from orchestrator.model import Component
from orchestrator.notify.event import Emitter, Event, EventKind
from orchestrator.quarantine.logbook import append_entry, quarantine_entry
from orchestrator.quarantine.manifest import PathRecord, QuarantineRecord, Status, UnitRecord
from orchestrator.quarantine.store import (
    DEFAULT_QUARANTINE_ROOT,
    LOG_NAME,
    active_record,
    check_name,
    check_root,
    new_stamp,
    stamps_of,
    write_record,
)
from orchestrator.steps.paths import is_within
from orchestrator.systemd import UnitCommand, daemon_reload, unit_command
from orchestrator.timestamps import format_timestamp
from orchestrator.transport.base import Transport

#: Stopping these would cut vmrepair's own way in (and the operator's) on a remote target.
PROTECTED_UNITS = frozenset({"ssh.service", "sshd.service", "ssh.socket"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return format_timestamp(moment)


def quarantine_component(
    transport: Transport,
    agent: AgentApi,
    component: Component,
    reason: str,
    *,
    audit: AuditSink,
    quarantine_root: str = DEFAULT_QUARANTINE_ROOT,
    log_path: str | None = None,
    watch: WatchConfig | None = None,
    now: Callable[[], dt.datetime] = utcnow,
    notify: Emitter | None = None,
) -> QuarantineRecord:
    """Isolate ``component`` on the target (steps in the module docstring); returns its manifest.

    ``watch``, when given, is checked for other components sharing a unit or a path with this one.
    ``notify`` is told once the component is isolated (a ``quarantined`` event; it never raises).

    Raises:
        QuarantineError: refused: already quarantined, a unit is the SSH server, a unit or path is
            shared with another component, a path contains the quarantine root, systemd cannot be
            asked; or failed: a unit would not stop or disable (then undone), or a file could not be
            moved (then the manifest stays ``quarantining`` and a release puts back what moved).
        TransportError: the target cannot be reached, or the agent failed.
        AuditError: the audit record cannot be written.
    """
    root, name = check_root(quarantine_root), check_name(component.name)
    _refuse_unsafe(component, root, watch)
    existing = active_record(agent, root, name)
    if existing is not None:
        raise QuarantineError(
            f"{name} is already quarantined on {transport.host} (since {existing.quarantined_at}, "
            f"in {existing.directory})", remedy=f"release it first: vmrepair quarantine release {name}")
    units = tuple(_unit_state(transport, unit) for unit in component.units)
    paths, skipped = _collect(agent, component)
    moment = now()
    directory = f"{root}/{name}/{new_stamp(moment, stamps_of(agent, root, name))}"
    record = QuarantineRecord(name, directory, Status.QUARANTINING, reason, iso(moment), transport.host,
                              paths, units, skipped=skipped)
    sha = write_record(agent, record, expect_sha256=None)
    try:
        _stop(transport, units)
    except QuarantineError:
        restore_units(transport, units)
        agent.remove_file(record.manifest_path, expect_sha256=sha)
        raise
    _move_all(agent, record, audit)
    daemon_reload(transport)
    record = dataclasses.replace(record, status=Status.QUARANTINED, paths=_as_moved(agent, record))
    write_record(agent, record, expect_sha256=sha)
    append_entry(agent, log_path or f"{root}/{LOG_NAME}", quarantine_entry(record))
    log_quarantine(audit, name, reason, directory=directory, files=len(record.moved),
                   units=[u.unit for u in units], skipped=list(skipped))
    if notify is not None:
        notify.emit(Event(EventKind.QUARANTINED, transport.host, f"{name} quarantined on {transport.host}: "
                          f"{reason}; release with `vmrepair quarantine release {name}`", component=name,
                          details={"reason": reason, "directory": directory, "files": len(record.moved),
                                   "units": [u.unit for u in units]}, is_audited=True))
    return record


def _refuse_unsafe(component: Component, root: str, watch: WatchConfig | None) -> None:
    protected = sorted(PROTECTED_UNITS.intersection(component.units))
    if protected:
        raise QuarantineError(
            f"refusing to quarantine {component.name}: stopping {', '.join(protected)} would lock "
            "vmrepair (and you) out of the target", remedy="repair it instead: vmrepair run --target T")
    roots = component.config_paths + component.unit_paths
    inside = [p for p in roots if is_within(root, p) or is_within(p, root)]
    if inside:
        raise QuarantineError(f"refusing to quarantine {component.name}: its path {inside[0]} and the "
                              f"quarantine root {root} contain one another")
    for other in watch.components if watch is not None else ():
        if other.name == component.name:
            continue
        shared = sorted(set(other.units).intersection(component.units))
        shared += [p for p in roots for q in other.config_paths + other.unit_paths
                   if is_within(p, q) or is_within(q, p)]
        if shared:
            raise QuarantineError(
                f"refusing to quarantine {component.name}: {shared[0]} also belongs to {other.name}",
                remedy=f"quarantining it would stop or strip {other.name} too; separate their "
                "units and paths in the watch config first")


def _unit_state(transport: Transport, unit: str) -> UnitRecord:
    show = show_unit(transport, unit)
    if show.unavailable_reason is not None:
        raise QuarantineError(f"cannot ask systemd about {unit}: {show.unavailable_reason}",
                              remedy="quarantine stops units through systemd; it needs systemd on the "
                              "target")
    props = show.properties
    return UnitRecord(unit, props.get("LoadState", ""), props.get("ActiveState", ""),
                      props.get("UnitFileState", ""))


def _collect(agent: AgentApi, component: Component) -> tuple[tuple[PathRecord, ...], tuple[str, ...]]:
    roots = list(component.config_paths + component.unit_paths)
    entries = agent.manifest(roots).entries if roots else ()
    paths = tuple(PathRecord.from_entry(e) for e in entries if e.type != "other")
    skipped = tuple(e.path for e in entries if e.type == "other")
    return tuple(sorted(paths, key=lambda p: p.path)), skipped


def _stop(transport: Transport, units: Sequence[UnitRecord]) -> None:
    loaded = [u for u in units if u.load_state != "not-found"]
    for verb, todo in (("stop", loaded), ("disable", [u for u in loaded if u.was_enabled])):
        for unit in todo:
            command = unit_command(transport, verb, unit.unit)
            if not command.succeeded:
                raise QuarantineError(f"cannot {verb} {unit.unit}: {command.describe()}",
                                      remedy="nothing was moved; its units were put back as they were")


def restore_units(transport: Transport, units: Sequence[UnitRecord]) -> tuple[UnitCommand, ...]:
    """Enable and start ``units`` as they were before the quarantine (a refused stop, a release);
    units systemd did not know are skipped.

    Raises:
        TransportError: the target cannot be reached.
    """
    commands = []
    for unit in units:
        if unit.load_state == "not-found":
            continue
        if unit.was_enabled:
            commands.append(unit_command(transport, "enable", unit.unit))
        if unit.was_active:
            commands.append(unit_command(transport, "start", unit.unit))
    return tuple(commands)


def _move_all(agent: AgentApi, record: QuarantineRecord, audit: AuditSink) -> None:
    for done, path in enumerate(record.moved):
        try:
            agent.move_file(path.path, record.stored_path(path.path))
        except TransportError as exc:
            message = (f"quarantine of {record.component} stopped after {done} of {len(record.moved)} "
                       f"files: cannot move {path.path}: {exc.message}")
            log_error(audit, record.component, message, directory=record.directory)
            raise QuarantineError(
                message, remedy=f"`vmrepair quarantine release {record.component}` puts back what was "
                "moved and starts its units again") from exc


def _as_moved(agent: AgentApi, record: QuarantineRecord) -> tuple[PathRecord, ...]:
    """The paths as they arrived (a file can change between listing and moving it): the release
    verifies against these."""
    if not record.moved:
        return record.paths
    stored = agent.manifest([record.directory]).by_path()
    result = []
    for path in record.paths:
        entry = stored.get(record.stored_path(path.path)) if path.kind != "dir" else None
        result.append(path if entry is None else
                      dataclasses.replace(PathRecord.from_entry(entry), path=path.path))
    return tuple(result)
