"""Apply a fix package to the target: preflight, verified backup, journal, operations, validation,
and on any failure a restore from the backup.

The target is never left half-changed knowingly: after the first change every way out either ends in
``applied`` (validated), ``rolled_back`` (restored and verified) or ``rollback_failed`` (each failure
listed, with the backup directory for finishing by hand).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, assert_never

from orchestrator.agent.api import AgentApi
from orchestrator.apply.backup import Backup, create_backup
from orchestrator.apply.fs_ops import run_node_op
from orchestrator.apply.journal import Journal
from orchestrator.apply.pkg_ops import check_preconditions, run_deb_install, run_dpkg_configure
from orchestrator.apply.preflight import preflight
from orchestrator.apply.restore import DEFAULT_COMMAND_TIMEOUT, restore
from orchestrator.apply.result import ApplyResult, ApplyStatus
from orchestrator.apply.unit_states import set_unit_state
from orchestrator.apply.units import daemon_reload, unit_action
from orchestrator.errors import StateError, VmRepairError
from orchestrator.fixpkg.compute import DEFAULT_MAX_FILE_BYTES
from orchestrator.fixpkg.fsops import MakeDirOp, RemoveDirOp, RemoveSymlinkOp, SetOwnerModeOp, SymlinkOp
from orchestrator.fixpkg.ops import (
    DaemonReloadOp,
    DebInstallOp,
    DpkgConfigureOp,
    JsonlRepairOp,
    Operation,
    RemoveFileOp,
    RotateLogOp,
    SetMetaOp,
    UnitOp,
    UnitStateOp,
    WriteFileOp,
)
from orchestrator.fixpkg.package import FixPackage
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

STAGE = "apply"


class _Run:
    """State of one apply: timings, notes and evidence (evidence failures never stop a restore)."""

    def __init__(
        self, pkg: FixPackage, agent: AgentApi, transport: Transport, *, backup_dir: Path,
        session: Session | None, timeout: float, txn_id: str,
    ) -> None:
        self.pkg = pkg
        self.agent = agent
        self.transport = transport
        self.timeout = timeout
        self.backup_dir = backup_dir
        self.session = session
        self.durations: dict[str, float] = {}
        self.notes: list[str] = []
        self.ops_done = 0
        self.txn_id = txn_id

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.durations[name] = round(time.monotonic() - began, 3)

    def event(self, event: str, **data: Any) -> None:
        if self.session is None:
            return
        try:
            self.session.event(STAGE, event, package=self.pkg.id, **data)
        except StateError as exc:
            log.warning("cannot record apply evidence: %s", exc)

    def result(self, status: ApplyStatus, errors: list[str]) -> ApplyResult:
        result = ApplyResult(
            status=status, backup_dir=self.backup_dir, ops_done=self.ops_done, errors=tuple(errors),
            durations=dict(self.durations), package_id=self.pkg.id, notes=tuple(self.notes),
            txn_id=self.txn_id,
        )
        # Only an event: the caller stores the result where its report expects it (one per issue).
        self.event("finished", **result.as_dict())
        return result


def apply_package(
    pkg: FixPackage,
    target_agent: AgentApi,
    target_transport: Transport,
    *,
    backup_dir: Path,
    journal: Journal,
    session: Session | None = None,
    validate: Callable[[], bool],
    needs_reboot: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    validated_sha256: str | None = None,
) -> ApplyResult:
    """Apply ``pkg`` to the target and keep it only if ``validate()`` passes on the target afterwards.

    Outcomes are results, not exceptions: ``aborted`` (nothing on the target was changed: it changed
    since capture, the backup could not be made or verified, or the journal could not be started; the
    ApplyError/StateError message is in ``errors``), ``applied``, ``rolled_back``, ``rollback_failed``.
    Each step is journalled in ``journal`` (its transaction already in state ``intent``) before it
    happens; ``applied`` ends the transaction ``committed``, or ``pending_reboot`` when ``needs_reboot``.

    ``validated_sha256`` is the package digest taken when the fix was validated; the agent checks
    ``pkg`` against it on the target right before the first change (``aborted`` when they differ).

    Raises:
        KeyboardInterrupt, SystemExit: re-raised after the target has been restored.
    """
    run = _Run(pkg, target_agent, target_transport, backup_dir=backup_dir, session=session,
               timeout=command_timeout, txn_id=journal.txn_id)
    run.event("started", operations=len(pkg.operations), backup_dir=str(backup_dir),
              package_sha256=pkg.package_sha256, validated_sha256=validated_sha256)
    # The caller recorded the intent (state ``intent``) before calling: a crash from here on is seen.
    try:
        with run.timed("preflight"):
            current = preflight(pkg, target_agent, target_transport, timeout=command_timeout)
            check_preconditions(pkg.operations, target_transport, timeout=command_timeout)
        with run.timed("backup"):
            backup = create_backup(pkg, target_agent, target_transport, backup_dir, current,
                                   max_file_bytes=max_file_bytes, timeout=command_timeout)
        if validated_sha256 is not None:
            # Last step before the first change: the target refuses a package that is not the one
            # validated (changed on disk while it waited for the operator, say).
            target_agent.verify_package(pkg.id, pkg.canonical_document(), validated_sha256)
        # Durable before the first change, or nothing changes.
        journal.backed_up(len(backup.entries), pkg.package_sha256)
    except VmRepairError as exc:
        run.event("aborted", error=exc.message)
        _set_state(journal, run, "aborted", cause=exc.message)
        return run.result("aborted", [exc.message])
    run.event("backup_verified", files=len(backup.entries))

    # From here on the target may change: every path below restores it or says why it could not.
    cause: str
    try:
        with run.timed("apply"):
            for index, op in enumerate(pkg.operations):
                journal.start(index)
                _run_operation(op, backup, run)
                journal.finish(index)
                run.ops_done = index + 1
        _set_state(journal, run, "applied")
        run.event("operations_done", ops_done=run.ops_done)
        with run.timed("verify"):
            is_valid = validate()
        if is_valid:
            if needs_reboot:
                # Verified as far as it can be while running; the verdict comes after the boot.
                _set_state(journal, run, "pending_reboot")
                run.notes.append("reboot required: the fix is verified again after the target boots")
            else:
                _set_state(journal, run, "committed")
            return run.result("applied", [])
        cause = "validation failed on the target after applying the package"
    except Exception as exc:  # noqa: BLE001 - whatever failed, the target must be restored first
        cause = _describe_failure(pkg, run.ops_done, exc)
    except BaseException:
        _roll_back(backup, journal, run, "interrupted")
        raise
    return _roll_back(backup, journal, run, cause)


def _run_operation(op: Operation, backup: Backup, run: _Run) -> None:
    agent, transport, timeout = run.agent, run.transport, run.timeout
    if isinstance(op, WriteFileOp):
        agent.write_file(op.path, run.pkg.blob(op.sha256), mode=op.mode, uid=op.uid, gid=op.gid,
                         expect_sha256=op.expect_sha256)
    elif isinstance(op, SetMetaOp | SymlinkOp | RemoveSymlinkOp | MakeDirOp | RemoveDirOp | SetOwnerModeOp):
        run_node_op(op, agent)   # chmod/chown in place: a set_meta no longer rewrites the content
    elif isinstance(op, RemoveFileOp):
        agent.remove_file(op.path, expect_sha256=op.expect_sha256)
    elif isinstance(op, RotateLogOp):
        rotated = agent.rotate_log(op.path, method=op.rotate_method)
        run.notes.append(
            f"rotated {op.path}: freed {rotated.freed_bytes} bytes, archive {rotated.archive or 'none'}"
            " (a rollback does not undo a rotation)"
        )
    elif isinstance(op, JsonlRepairOp):
        repaired = agent.jsonl_repair(op.path)
        run.notes.append(
            f"repaired {op.path}: kept {repaired.kept}, repaired {repaired.repaired}, quarantined "
            f"{repaired.quarantined} line(s) and {repaired.fragments} fragment(s) of repaired lines to "
            f"{repaired.quarantine_path or 'nowhere'}; "
            f"agent backup {repaired.backup_path}"
        )
    elif isinstance(op, DaemonReloadOp):
        daemon_reload(transport, timeout=timeout)
    elif isinstance(op, UnitOp):
        unit_action(transport, op.unit, op.action, timeout=timeout)
    elif isinstance(op, DebInstallOp):
        record = next(r for r in backup.packages if r.sha256 == op.sha256 and r.spec == op.spec)
        run.notes.append(run_deb_install(op, backup.deb_path(record), agent, transport, timeout=timeout))
    elif isinstance(op, DpkgConfigureOp):
        run.notes.append(run_dpkg_configure(op, transport, timeout=timeout))
    elif isinstance(op, UnitStateOp):
        set_unit_state(op, transport, timeout=timeout)
    else:
        assert_never(op)
    run.event("operation_done", op=op.name,
              target=getattr(op, "path", getattr(op, "unit", getattr(op, "package", ""))))


def _describe_failure(pkg: FixPackage, index: int, exc: Exception) -> str:
    message = exc.message if isinstance(exc, VmRepairError) else f"{type(exc).__name__}: {exc}"
    if index < len(pkg.operations):
        op = pkg.operations[index]
        subject = getattr(op, "path", None) or getattr(op, "unit", None)
        described = f"{op.name} {subject}" if subject else op.name
        return f"operation {index} ({described}) failed: {message}"
    return f"validation raised: {message}"


def _set_state(journal: Journal, run: _Run, state: str, **extra: Any) -> None:
    try:
        journal.set_state(state, **extra)
    except StateError as exc:
        # The target matters more than the journal: record the gap loudly and carry on.
        run.notes.append(f"journal not updated to {state!r}: {exc.message}")
        log.exception("journal not updated to %r", state)


def _roll_back(backup: Backup, journal: Journal, run: _Run, cause: str) -> ApplyResult:
    log.warning("rolling back package %s: %s", run.pkg.id, cause)
    run.event("rolling_back", cause=cause)
    _set_state(journal, run, "rolling_back", cause=cause)
    with run.timed("rollback"):
        try:
            errors = restore(backup, run.agent, run.transport, units_touched=journal.units_touched,
                             timeout=run.timeout)
        except Exception as exc:  # noqa: BLE001 - a bug in restore must still be reported loudly
            errors = [f"rollback crashed: {type(exc).__name__}: {exc}"]
    if not errors:
        _set_state(journal, run, "rolled_back")
        return run.result("rolled_back", [cause])
    _set_state(journal, run, "rollback_failed", errors=errors)
    run.notes.append(
        f"MANUAL RECOVERY NEEDED: the verified backup is in {run.backup_dir} (backup.json lists each"
        " file with its mode and owner, files/<sha256> holds its content)"
    )
    return run.result("rollback_failed", [cause, *errors])
