"""Backups and rollback_from_backup on their own: verified blobs, crash recovery, damaged backups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.apply import rollback_from_backup
from orchestrator.apply.backup import create_backup, load_backup
from orchestrator.apply.preflight import preflight
from orchestrator.errors import ApplyError, StateError
from orchestrator.fixpkg import FixPackage, RotateLogOp, WriteFileOp
from tests.unit.apply.conftest import NEW_CONF, journal_for
from tests.unit.apply.fakes import FakeAgent, sha, systemd_transport
from tests.unit.fixpkg.scenario import CONF, LOG

MakePackage = Callable[..., FixPackage]


def _half_apply(pkg: FixPackage, target: FakeAgent, backup_dir: Path, count: int) -> None:
    """What a crash after ``count`` operations leaves: backup, journal, and a half-changed target."""
    current = preflight(pkg, target)
    create_backup(pkg, target, systemd_transport(), backup_dir, current, max_file_bytes=1 << 20,
                  timeout=5)
    journal = journal_for(pkg, backup_dir)
    journal.backed_up(0)
    for index, op in enumerate(pkg.operations[:count]):
        journal.start(index)
        assert isinstance(op, WriteFileOp)
        target.write_file(op.path, pkg.blob(op.sha256), mode=op.mode, uid=op.uid, gid=op.gid,
                          expect_sha256=op.expect_sha256)
        journal.finish(index)


def test_rollback_after_a_crash_restores_the_target(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    before = target.state()
    _half_apply(pkg, target, tmp_path / "backup", 2)
    assert target.files[CONF].data == NEW_CONF
    transport = systemd_transport()
    # The journal of the first two (file) operations says no systemctl operation had begun.
    assert rollback_from_backup(tmp_path / "backup", target, transport, units_touched=False) == []
    assert target.state() == before
    assert transport.calls == []


def test_rollback_is_idempotent(target: FakeAgent, make_package: MakePackage, tmp_path: Path) -> None:
    pkg = make_package()
    before = target.state()
    _half_apply(pkg, target, tmp_path / "backup", 2)
    assert rollback_from_backup(tmp_path / "backup", target, systemd_transport()) == []
    target.mutations.clear()
    assert rollback_from_backup(tmp_path / "backup", target, systemd_transport()) == []
    assert target.mutations == [] and target.state() == before


def test_backup_is_verified_on_load(target: FakeAgent, make_package: MakePackage, tmp_path: Path) -> None:
    pkg = make_package()
    _half_apply(pkg, target, tmp_path / "backup", 0)
    original = sha(b"listen 80\nworkers 0\n")
    (tmp_path / "backup" / "files" / original).write_bytes(b"bit rot")
    with pytest.raises(StateError, match=f"backup of {CONF}: .* does not match its hash"):
        load_backup(tmp_path / "backup")
    errors = rollback_from_backup(tmp_path / "backup", target, systemd_transport())
    assert len(errors) == 1 and errors[0].startswith("cannot use the backup: backup of /etc/app/app.conf")


def test_missing_backup_is_reported(tmp_path: Path, target: FakeAgent) -> None:
    assert rollback_from_backup(tmp_path / "nothing", target, systemd_transport()) == [
        f"cannot use the backup: no backup in {tmp_path / 'nothing'} (backup.json missing)"
    ]


def test_file_changed_between_preflight_and_backup_is_refused(
    target: FakeAgent, make_package: MakePackage, tmp_path: Path
) -> None:
    pkg = make_package()
    current = preflight(pkg, target)
    target.files[CONF].data = b"changed in between\n"
    with pytest.raises(ApplyError, match=f"target changed since capture: {CONF} \\(changed during backup\\)"):
        create_backup(pkg, target, systemd_transport(), tmp_path / "b", current, max_file_bytes=1 << 20,
                      timeout=5)


def test_preflight_refuses_a_missing_log(target: FakeAgent, make_package: MakePackage) -> None:
    pkg = make_package([{"op": "rotate_log", "path": LOG, "method": "truncate"}], files=False)
    assert pkg.operations == (RotateLogOp(LOG, "truncate"),)
    del target.files[LOG]
    with pytest.raises(ApplyError, match=f"target changed since capture: {LOG} \\(a log to rotate, but"):
        preflight(pkg, target)
