"""Closing runs that were interrupted (SIGKILL of the CLI or the daemon, power loss, host reboot).

Run at every start, with the start-up recovery of fix transactions and under the same state lock
(:func:`orchestrator.apply.recovery.recover_on_start`). Every session still ``running`` whose owner
process is gone (:mod:`orchestrator.session.owner`: another boot, a dead pid, or a pid now carried by
another process) is closed, never left half-open:

- status ``interrupted``, with the stage it was in (the timeline's entry still ``running``, marked
  ``interrupted``) and the owner that died;
- its troubleshooting VMs destroyed: ephemeral VMs recorded with the dead owner's pid (created since the
  session started). This also covers a VM whose owner pid a new process carries after a reboot, which
  ``VmManager.reap(orphans_only=True)`` would take for alive and keep;
- atomic-write temp files it left in its session directory removed, and those (and interrupted fix
  package saves) left in the state directory once they are old enough to belong to no live writer;
- an evidence line, an audit record (``recovery``/``session_interrupted``), an ``error`` notification,
  and its report rendered again, saying what was left and what to do.

Fix transactions are not touched here: the transaction recovery that runs just before has already
aborted, rolled back or verified them; the closed session only names their states.

Why *interrupted* rather than *continued*: a run's stages hold state only in memory (the target's
connection, the running VM, the reproduced fault in it), so a killed run cannot be picked up mid-stage
without re-doing its stages anyway, and the target may have changed while nobody watched. Re-running
the pipeline from detection is the same work, and it is correct by construction. So the old session is
closed and the next detection (the next ``vmrepair run`` or daemon tick) starts a fresh run, which
records ``resumed_from`` (:func:`resumed_from`) when the previous session of that target was
interrupted. Nothing of a killed run keeps running: its agent processes on the target answer one SSH
channel (or the local pipe) and exit when their stdin closes with it; its QEMU processes are libvirt
domains, destroyed here.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.app import App
from orchestrator.audit.sink import log_recovery
from orchestrator.errors import AuditError, StateError, VmRepairError
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor.vm import VmManager
from orchestrator.hypervisor.vmtypes import NO_DOMAIN, VmInfo
from orchestrator.model import RUN_EXIT_CODES, SessionStatus
from orchestrator.notify.event import Event, EventKind
from orchestrator.report.markdown import write_report
from orchestrator.session.history import MAX_SESSIONS
from orchestrator.session.jsonfile import META_NAME, read_session_meta
from orchestrator.session.owner import Owner, current_boot_id, is_alive
from orchestrator.session.store import Session, open_session
from orchestrator.state.transactions import TransactionStore
from orchestrator.timestamps import now_timestamp, parse_timestamp

log = logging.getLogger(__name__)

RUNNING = "running"
#: Stage name recorded when the run died before its first stage.
BEFORE_FIRST_STAGE = "start"
#: A temp file or package save in the shared state directory older than this belongs to no live writer
#: (an atomic write takes milliseconds); younger ones may be another command's, so they stay.
STALE_AFTER_S = 600.0
#: What :func:`orchestrator.fsutil.atomic_write` names its temp files: ``.<name>.<random>.tmp``.
_TEMP_NAME = re.compile(r"\..+\.tmp")

VmsFor = Callable[[], VmManager]


@dataclass(frozen=True)
class ClosedRun:
    session: str
    target: str
    stage: str
    why: str
    vms: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session, "target": self.target, "stage": self.stage, "why": self.why,
                "vms_destroyed": list(self.vms), "files_removed": list(self.removed),
                "problems": list(self.problems)}


@dataclass
class _Leftovers:
    vms: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def close_interrupted_runs(app: App, *, vms: VmsFor | None = None) -> list[ClosedRun]:
    """Close every running session whose owner is gone, and clean the state directory's stale temp
    files. The caller holds the state lock. A failure to close one session is logged and left for the
    next start; it never stops the others (or the command that started).

    ``vms`` gives the VM manager (default: each of :meth:`App.vm_managers`, the local one and every
    remote hypervisor's); it is only asked for when a run is closed.
    """
    boot = current_boot_id()
    closed = []
    for directory in _session_dirs(app.settings.sessions_dir):
        try:
            meta = read_session_meta(directory)
        except StateError:
            continue   # listed as unreadable by `vmrepair sessions`; nothing to close safely
        if meta.get("status") != RUNNING:
            continue
        owner = Owner.from_meta(meta.get("owner"))
        if owner is not None and is_alive(owner, boot_id=boot):
            continue
        why = _why_dead(owner, boot)
        try:
            closed.append(_close(app, directory, owner, why,
                                 [vms] if vms is not None else [f for _, f in app.vm_managers()]))
        except VmRepairError as exc:
            log.warning("interrupted session %s not closed (next start tries again): %s", directory.name,
                        exc.message)
    _clean_state_dir(app.settings.state_dir)
    return closed


def resumed_from(sessions_dir: Path, target: str, *, current: str) -> str | None:
    """The id of the previous run on ``target`` when it was interrupted (the new run picks up its
    work), else None. The previous run is the one that *ended* last (its session.json written last:
    the close of an interrupted run, the finish of any other), not the newest id: ids have a
    one-second stamp, and a run closed by this start may share its second with older ones."""
    last: tuple[int, str, object] | None = None
    for directory in _session_dirs(sessions_dir):
        if directory.name == current:
            continue
        try:
            meta = read_session_meta(directory)
            written = (directory / META_NAME).stat().st_mtime_ns
        except (StateError, OSError):
            continue
        if meta.get("target") != target or meta.get("status") == RUNNING:
            continue
        if last is None or written > last[0]:
            last = (written, directory.name, meta.get("status"))
    if last is not None and last[2] == str(SessionStatus.INTERRUPTED):
        return last[1]
    return None


def _session_dirs(sessions_dir: Path) -> Iterator[Path]:
    """Session directories, newest first; only the newest MAX_SESSIONS (a run older than those was
    closed by an earlier start)."""
    try:
        entries = sorted((e for e in sessions_dir.iterdir() if e.is_dir() and not e.is_symlink()),
                         reverse=True)
    except OSError:
        return iter(())
    return iter(entries[:MAX_SESSIONS])


def _why_dead(owner: Owner | None, boot: str) -> str:
    if owner is None:
        return "its owner was not recorded (a vmrepair older than this one) and it holds no lock"
    if boot and owner.boot_id and owner.boot_id != boot:
        return f"its process (pid {owner.pid}) ran in a previous boot of this host"
    return f"its process (pid {owner.pid}) is gone"


def _close(app: App, directory: Path, owner: Owner | None, why: str, vms: list[VmsFor]) -> ClosedRun:
    try:
        session = open_session(directory)
        has_timeline = True
    except StateError as exc:
        log.warning("%s; closing it without its timeline", exc.message)
        # Closed all the same (never left half-open); the unreadable timeline is not overwritten.
        session = open_session(directory, with_timeline=False)
        has_timeline = False
    stage = _mark_stage(session)
    if has_timeline:
        session.write_json("timeline", [vars(r) for r in session.timeline])
    # On every hypervisor: the run may have placed its troubleshooting VM on a remote one.
    left = _Leftovers()
    for manager in vms:
        found = _destroy_vms(manager, owner, session.started_at)
        left.vms.extend(found.vms)
        left.problems.extend(found.problems)
    removed = _remove_temp_files(directory, older_than=None)
    txns = _transactions(app, session.id)
    closed = ClosedRun(session.id, session.target, stage, why, tuple(left.vms), tuple(removed),
                       tuple(left.problems))
    summary = _summary(closed, txns)
    # ``stage`` of an evidence line is the stage writing it (recovery); the one the run died in is named.
    session.event("recovery", "interrupted", interrupted_in=stage, why=why, vms_destroyed=list(left.vms),
                  files_removed=list(removed), problems=list(left.problems), transactions=txns)
    session.set_meta(interrupted={**closed.as_dict(), "transactions": txns, "closed_at": now_timestamp()},
                     exit_code=RUN_EXIT_CODES[SessionStatus.INTERRUPTED])
    session.finish(SessionStatus.INTERRUPTED, summary)
    log.warning("closed interrupted session %s: %s", session.id, summary)
    try:
        log_recovery(app.audit, "pipeline", "session_interrupted", status=str(SessionStatus.INTERRUPTED),
                     session=session.id, target=session.target, stage=stage, why=why,
                     vms_destroyed=list(left.vms), problems=list(left.problems))
    except AuditError as exc:
        log.warning("audit of interrupted session %s not written: %s", session.id, exc.message)
    app.notifier.emit(Event(EventKind.ERROR, session.target or "unknown", summary, session_id=session.id,
                            details={"interrupted": True, "stage": stage}))
    try:
        write_report(directory)
    except (StateError, OSError) as exc:
        log.warning("report of interrupted session %s not written: %s", session.id, exc)
    return closed


def _mark_stage(session: Session) -> str:
    """The stage the run died in (its timeline entries still running are marked interrupted)."""
    stage = ""
    for record in session.timeline:
        if record.status == RUNNING:
            record.status, record.detail = str(SessionStatus.INTERRUPTED), "the run was killed in this stage"
            stage = record.name
    if stage:
        return stage
    if session.timeline:
        # A session written before stages were recorded as they start: the last one that ended.
        return f"after {session.timeline[-1].name}"
    return BEFORE_FIRST_STAGE


def _is_half_created(vm: VmInfo, since: dt.datetime | None) -> bool:
    """A VM directory without a record or a domain, written to since the dead run started: the run was
    killed between creating the directory and writing the record (seen on a real VM: the overlay is
    made first). Runs hold the state lock one at a time, so it can only be that run's."""
    if since is None or vm.state != NO_DOMAIN:
        return False
    try:
        changed = dt.datetime.fromtimestamp(vm.vm_dir.stat().st_mtime, dt.UTC)
    except OSError:
        return False
    return changed >= since - dt.timedelta(seconds=1)   # session times have whole seconds


def _destroy_vms(vms: VmsFor, owner: Owner | None, started_at: str) -> _Leftovers:
    left = _Leftovers()
    try:
        manager = vms()
        if owner is None:
            # Nothing names its VMs: those whose owner is gone are the ones a dead run left.
            left.vms = manager.reap(orphans_only=True)
            return left
        since = parse_timestamp(started_at) if started_at else None
        for vm in manager.list():
            try:
                record = inst.InstanceRecord.load(vm.vm_dir)
            except VmRepairError:
                if _is_half_created(vm, since):
                    manager.destroy(vm.name)
                    left.vms.append(vm.name)
                continue
            created = parse_timestamp(record.created_at) if record.created_at else None
            if not (record.ephemeral and record.owner_pid == owner.pid):
                continue
            if since is not None and created is not None and created < since:
                continue   # the pid's earlier owner, not this run
            manager.destroy(vm.name)
            left.vms.append(vm.name)
    except VmRepairError as exc:
        left.problems.append(f"troubleshooting VMs not destroyed: {exc.message} (run `vmrepair vm reap`)")
    return left


def _transactions(app: App, session_id: str) -> list[dict[str, str]]:
    try:
        found = TransactionStore(app.state).find(states=None)
    except VmRepairError as exc:
        return [{"error": f"fix transactions not read: {exc.message}"}]
    return [{"txn": t.id, "component": t.component, "state": t.state} for t in found
            if t.session_id == session_id]


def _summary(closed: ClosedRun, txns: list[dict[str, str]]) -> str:
    parts = [f"interrupted in stage {closed.stage}: {closed.why}"]
    if closed.vms:
        parts.append(f"troubleshooting VM(s) {', '.join(closed.vms)} destroyed")
    parts += list(closed.problems)
    if txns:
        parts.append("fix transaction(s) " + ", ".join(f"{t.get('txn', '?')} {t.get('state', '')}".strip()
                                                       for t in txns))
    return "; ".join(parts)


def _remove_temp_files(directory: Path, *, older_than: float | None) -> list[str]:
    """Remove atomic-write temp files directly in ``directory`` (regular files only), those older
    than ``older_than`` seconds when given."""
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            info = entry.lstat()
            if not _TEMP_NAME.fullmatch(entry.name) or not entry.is_file() or entry.is_symlink():
                continue
            if older_than is not None and now - info.st_mtime < older_than:
                continue
            entry.unlink()
        except OSError:
            continue
        removed.append(str(entry))
    return removed


def _clean_state_dir(state_dir: Path) -> None:
    """Temp files and interrupted fix-package saves (a directory without package.json) in the shared
    state directory, once they are too old to be a live writer's."""
    for path in _remove_temp_files(state_dir, older_than=STALE_AFTER_S):
        log.warning("removed a temp file a killed vmrepair left: %s", path)
    packages = state_dir / "packages"
    try:
        saves = [p for p in packages.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    now = time.time()
    for save in saves:
        try:
            if (save / "package.json").exists() or now - save.stat().st_mtime < STALE_AFTER_S:
                continue
            shutil.rmtree(save)
        except OSError as exc:
            log.warning("interrupted package save %s not removed: %s", save, exc)
            continue
        log.warning("removed an interrupted fix-package save: %s", save)
