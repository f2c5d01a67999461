"""Put the target back as the backup recorded it: unit-file states first (the reverse of apply, see
:mod:`.unit_states`), then files, symlinks and directories (in reverse package order, so a created
directory is emptied before it goes and a removed one comes back before its content), then units, then
check all of it.

Usable on its own (crash recovery, `vmrepair fixes rollback`, by hand) via :func:`rollback_from_backup`.
Restoring never stops at the first failure: every path and unit is attempted and every failure is
returned, so one stuck file does not leave the others changed.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

from orchestrator.agent.api import AgentApi, FileEntry
from orchestrator.apply.backup import Backup, load_backup
from orchestrator.apply.entries import BackupEntry
from orchestrator.apply.fs_ops import RESTORED_KINDS, matches, restore_entry
from orchestrator.apply.pkg_ops import settle
from orchestrator.apply.unit_states import restore_unit_state, verify_unit_state
from orchestrator.apply.units import daemon_reload, restore_unit
from orchestrator.errors import VmRepairError
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUT = 120.0


def rollback_from_backup(
    backup_dir: Path,
    target_agent: AgentApi,
    target_transport: Transport,
    *,
    units_touched: bool = True,
    timeout: float = DEFAULT_COMMAND_TIMEOUT,
) -> list[str]:
    """Restore everything recorded in ``backup_dir``; return the errors (empty: fully restored).

    ``units_touched`` comes from the transaction's journal: units are restored only when a systemctl
    operation began, because restarting a production service that apply never touched is a change of
    its own. Without a journal (by hand), keep the default: it cannot be ruled out.
    """
    try:
        backup = load_backup(backup_dir)
    except VmRepairError as exc:
        return [f"cannot use the backup: {exc.message}"]
    return restore(backup, target_agent, target_transport, units_touched=units_touched, timeout=timeout)


def restore(
    backup: Backup,
    agent: AgentApi,
    transport: Transport,
    *,
    units_touched: bool,
    timeout: float = DEFAULT_COMMAND_TIMEOUT,
) -> list[str]:
    """Restore ``backup`` on the target and verify the files; return the errors.

    Unit-file states first (``disable`` needs the unit file a file restore may remove), then reinstalled
    packages are settled (an interrupted reinstall finished, see
    :func:`orchestrator.apply.pkg_ops.settle`): dpkg rewrites their files, the restore then puts back
    the ones the backup holds."""
    entries = [entry for entry in backup.entries if entry.kind in RESTORED_KINDS]
    errors = []
    if units_touched:
        errors += [e for unit, prior in backup.unit_states.items()
                   if (e := restore_unit_state(transport, unit, prior, timeout=timeout)) is not None]
    if backup.packages or backup.holds_services:
        errors += settle(backup.packages, backup.deb_path, agent, transport, timeout=timeout)
    _sweep(entries, agent)   # first too: a directory to remove may still hold a replace's temp file
    errors += _restore_files(backup, entries, agent)
    if units_touched and (backup.units or backup.has_daemon_reload or backup.unit_states):
        errors += _restore_units(backup, transport, timeout)
    _sweep(entries, agent)
    errors += _verify_files(entries, agent)
    if units_touched:
        errors += [e for unit, prior in backup.unit_states.items()
                   if (e := verify_unit_state(transport, unit, prior, timeout=timeout)) is not None]
    for error in errors:
        log.error("rollback from %s: %s", backup.directory, error)
    return errors


def _snapshot(agent: AgentApi, entries: list[BackupEntry]) -> dict[str, FileEntry] | None:
    try:
        paths = [entry.path for entry in entries]
        return agent.manifest(paths, recursive=False).by_path() if entries else {}
    except VmRepairError as exc:
        log.warning("cannot see the target's files before restoring them: %s", exc)
        return None


def _restore_files(backup: Backup, entries: list[BackupEntry], agent: AgentApi) -> list[str]:
    now = _snapshot(agent, entries)
    errors = []
    for entry in reversed(entries):
        # Skipping what already matches keeps a repeated rollback (after a crash) from redoing work.
        found = None if now is None else now.get(entry.path)
        if now is not None and matches(entry, found):
            continue
        try:
            restore_entry(backup.content, entry, found, agent)
        except VmRepairError as exc:
            errors.append(f"restore {entry.path}: {exc.message}")
    return errors


def _restore_units(backup: Backup, transport: Transport, timeout: float) -> list[str]:
    errors = []
    try:
        daemon_reload(transport, timeout=timeout)  # unit files may have been restored
    except VmRepairError as exc:
        errors.append(f"daemon-reload: {exc.message}")
    for unit, prior in backup.units.items():
        if (error := restore_unit(transport, unit, prior, timeout=timeout)) is not None:
            errors.append(error)
    return errors


def _sweep(entries: list[BackupEntry], agent: AgentApi) -> None:
    """A replace interrupted by a crash leaves its temp file beside the real one: remove it. Litter,
    not damage (the real file is whole), so a failure here is logged, not a rollback error."""
    dirs = sorted({posixpath.dirname(entry.path) for entry in entries})
    try:
        for path in agent.sweep_temps(dirs) if dirs else []:
            log.warning("removed %s left by an interrupted replace", path)
    except VmRepairError as exc:
        log.warning("cannot sweep temp files in %s: %s", ", ".join(dirs), exc.message)


def _verify_files(entries: list[BackupEntry], agent: AgentApi) -> list[str]:
    """A rollback is only reported as done when the target is seen to hold the backed-up files."""
    now = _snapshot(agent, entries)
    if now is None:
        return ["cannot verify the restored files: the target's manifest failed"]
    return [
        f"{entry.path} still differs from the backup after restore"
        for entry in entries if not matches(entry, now.get(entry.path))
    ]
