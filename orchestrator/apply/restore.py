"""Put the target back as the backup recorded it: files first, then units, then check the files.

Usable on its own (crash recovery, `vmrepair fixes rollback`, by hand) via :func:`rollback_from_backup`.
Restoring never stops at the first failure: every path and unit is attempted and every failure is
returned, so one stuck file does not leave the others changed.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

from orchestrator.agent.api import AgentApi, FileEntry
from orchestrator.apply.backup import Backup, BackupEntry, load_backup
from orchestrator.apply.pkg_ops import settle
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

    Reinstalled packages are settled first (an interrupted reinstall finished, see
    :func:`orchestrator.apply.pkg_ops.settle`): dpkg rewrites their files, the restore then puts back
    the ones the backup holds."""
    entries = [entry for entry in backup.entries if entry.kind == "file"]
    errors = settle(backup.packages, backup.deb_path, agent, transport, timeout=timeout) \
        if backup.packages else []
    errors += _restore_files(backup, entries, agent)
    if units_touched and (backup.units or backup.has_daemon_reload):
        errors += _restore_units(backup, transport, timeout)
    _sweep(entries, agent)
    errors += _verify_files(entries, agent)
    for error in errors:
        log.error("rollback from %s: %s", backup.directory, error)
    return errors


def _snapshot(agent: AgentApi, entries: list[BackupEntry]) -> dict[str, FileEntry] | None:
    try:
        return agent.manifest([entry.path for entry in entries]).by_path() if entries else {}
    except VmRepairError as exc:
        log.warning("cannot see the target's files before restoring them: %s", exc)
        return None


def _matches(entry: BackupEntry, found: FileEntry | None) -> bool:
    if not entry.existed:
        return found is None
    return found is not None and found.type == "file" and (
        found.sha256, found.mode, found.uid, found.gid
    ) == (entry.sha256, entry.mode, entry.uid, entry.gid)


def _restore_files(backup: Backup, entries: list[BackupEntry], agent: AgentApi) -> list[str]:
    now = _snapshot(agent, entries)
    errors = []
    for entry in reversed(entries):
        # Skipping what already matches keeps a repeated rollback (after a crash) from redoing work.
        if now is not None and _matches(entry, now.get(entry.path)):
            continue
        try:
            if entry.existed:
                agent.write_file(entry.path, backup.content(entry), mode=entry.mode, uid=entry.uid,
                                 gid=entry.gid, expect_sha256=None)
            else:
                agent.remove_file(entry.path, expect_sha256=None)
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
        for entry in entries if not _matches(entry, now.get(entry.path))
    ]
