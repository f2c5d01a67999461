"""Package operations on the target: preconditions, backup of the files a reinstall changes, rollback
to the exact prior files, settling dpkg after an interrupted reinstall, and configure notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import dpkg
from orchestrator.apply import pkg_ops, rollback_from_backup
from orchestrator.apply.backup import create_backup, load_backup
from orchestrator.apply.pkg_ops import check_preconditions
from orchestrator.apply.preflight import preflight
from orchestrator.errors import ApplyError
from orchestrator.fixpkg import DebInstallOp, DpkgConfigureOp, FixPackage, UnitOp
from tests.unit.apply.conftest import apply_journalled, txn_state
from tests.unit.fake_agent import FakeAgent
from tests.unit.fake_dpkg import FakeDpkgHost, FakePackage

BIN, LIB, CONF = "/usr/sbin/app", "/usr/lib/app/core.so", "/etc/app/app.conf"
PRISTINE = {BIN: b"\x7fELF app 1.0\n", LIB: b"\x7fELF core\n", CONF: b"workers 4\n"}


@pytest.fixture(autouse=True)
def _no_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rollback has no sleep to inject (recovery calls it); the wait between lock retries is a constant.
    monkeypatch.setattr(pkg_ops, "LOCK_WAIT_S", 0.0)


def host(*, missing_lib: bool = True, status: str = "ii ") -> FakeDpkgHost:
    """The app package at 1.0-1 with a truncated binary, (by default) a deleted library and an edited
    conffile."""
    agent = FakeAgent()
    agent.file(BIN, b"", 0o755)                 # truncated
    agent.file(CONF, b"workers 8  # local edit\n")
    if not missing_lib:
        agent.file(LIB, PRISTINE[LIB])
    package = FakePackage("app", "1.0-1", "amd64", status, dict(PRISTINE), frozenset({CONF}))
    return FakeDpkgHost(agent, [package, FakePackage("other", "2.0", "all", "iF ")])


def package_for(h: FakeDpkgHost, *extra: object, version: str = "1.0-1") -> FixPackage:
    app = h.package("app")
    ops = (DebInstallOp("app", version, "amd64", app.deb_sha256, len(app.deb)), *extra)
    return FixPackage(id="pkg-1", created_at="2026-12-01T00:00:00+00:00", operations=ops,  # type: ignore[arg-type]
                      blobs={app.deb_sha256: app.deb}, issue={}, diagnosis={}, validation={},
                      reboot_required=False, allowed_roots=("/etc",))


def test_deb_install_applies_and_keeps_the_modified_conffile(tmp_path: Path) -> None:
    h = host()
    result = apply_journalled(package_for(h), h.agent, h.transport, backup_dir=tmp_path / "b",
                              validate=lambda: True)
    assert result.status == "applied", result.errors
    assert h.agent.files[BIN].data == PRISTINE[BIN] and h.agent.files[LIB].data == PRISTINE[LIB]
    assert h.agent.files[CONF].data == b"workers 8  # local edit\n"
    assert dpkg.POLICY_RC not in h.agent.fs, "services must not stay held back"
    assert h.transport.files == {}, "the uploaded .deb is removed"
    assert any("reinstalled app:amd64 1.0-1" in note for note in result.notes)
    install = [c for c in h.transport.argvs if "-i" in c]
    assert install and install[0][-1].startswith("/run/vmrepair/deb-")


def test_wrong_version_on_the_target_is_refused_before_any_change(tmp_path: Path) -> None:
    h = host()
    before = h.agent.state()
    result = apply_journalled(package_for(h, version="1.0-2"), h.agent, h.transport,
                              backup_dir=tmp_path / "b", validate=lambda: True)
    assert result.status == "aborted"
    assert result.errors[0] == ("target changed since capture: app:amd64 is at 1.0-1 (ii), the fix "
                                "reinstalls 1.0-2")
    assert h.agent.state() == before and h.installs == []


def test_a_policy_rc_of_the_targets_own_is_refused(tmp_path: Path) -> None:
    h = host()
    h.agent.file(dpkg.POLICY_RC, b"#!/bin/sh\nexit 0\n", 0o755)
    with pytest.raises(ApplyError, match=r"has a /usr/sbin/policy-rc\.d of its own"):
        check_preconditions(package_for(h).operations, h.transport, timeout=5)


def test_a_policy_rc_of_the_targets_own_is_refused_for_a_configure_too() -> None:
    h = host()
    h.agent.file(dpkg.POLICY_RC, b"#!/bin/sh\nexit 0\n", 0o755)
    with pytest.raises(ApplyError, match=r"has a /usr/sbin/policy-rc\.d of its own"):
        check_preconditions((DpkgConfigureOp("other"),), h.transport, timeout=5)


def test_dpkg_configure_preconditions() -> None:
    h = host()
    check_preconditions((DpkgConfigureOp("other"), DpkgConfigureOp("all")), h.transport, timeout=5)
    with pytest.raises(ApplyError, match=r"app has nothing to configure any more \(amd64 ii\)"):
        check_preconditions((DpkgConfigureOp("app"),), h.transport, timeout=5)
    h.package("other").status = "ii "
    with pytest.raises(ApplyError, match="dpkg --audit reports nothing to configure any more"):
        check_preconditions((DpkgConfigureOp("all"),), h.transport, timeout=5)


def test_backup_holds_changed_files_missing_ones_the_status_and_the_deb(tmp_path: Path) -> None:
    h = host()
    pkg = package_for(h)
    backup = create_backup(pkg, h.agent, h.transport, tmp_path / "b", preflight(pkg, h.agent),
                           max_file_bytes=1 << 20, timeout=5)
    entries = {e.path: e for e in backup.entries}
    assert entries[BIN].existed and backup.content(entries[BIN]) == b"" and entries[BIN].mode == 0o755
    assert not entries[LIB].existed
    assert entries[CONF].existed and backup.content(entries[CONF]) == b"workers 8  # local edit\n"
    (record,) = load_backup(tmp_path / "b").packages
    assert (record.spec, record.version, record.status) == ("app:amd64", "1.0-1", "ii")
    assert backup.deb_path(record).read_bytes() == h.package("app").deb


def test_rollback_restores_exactly_the_prior_files(tmp_path: Path) -> None:
    h = host()
    before = h.agent.state()
    result = apply_journalled(package_for(h, UnitOp("app.service", "restart")), h.agent, h.transport,
                              backup_dir=tmp_path / "b", validate=lambda: False)
    assert result.status == "rolled_back", result.errors
    assert h.agent.state() == before    # the binary truncated again, the recreated library removed
    assert dpkg.POLICY_RC not in h.agent.fs
    assert txn_state(tmp_path / "b", result.txn_id).state == "rolled_back"


def test_failed_reinstall_is_finished_by_the_rollback_then_files_restored(tmp_path: Path) -> None:
    h = host()
    h.install_failures = 1
    before = h.agent.state()
    result = apply_journalled(package_for(h), h.agent, h.transport, backup_dir=tmp_path / "b",
                              validate=lambda: True)
    assert result.status == "rolled_back", result.errors
    assert "dpkg -i app:amd64 exited 1" in result.errors[0]
    assert h.installs == ["app", "app"] and h.package("app").status == "ii "
    assert h.agent.state() == before


def test_rollback_after_a_crash_mid_dpkg_settles_dpkg(tmp_path: Path) -> None:
    """What recovery does after a kill inside dpkg -i: the package half-installed, some files new."""
    h = host()
    pkg = package_for(h)
    before = h.agent.state()
    create_backup(pkg, h.agent, h.transport, tmp_path / "b", preflight(pkg, h.agent), max_file_bytes=1 << 20,
                  timeout=5)
    h.agent.file(BIN, PRISTINE[BIN], 0o755)
    h.agent.file(dpkg.POLICY_RC, dpkg.POLICY_RC_SCRIPT, 0o755)
    h.package("app").status = "iHR"
    h.locked = 2      # the killed apply's dpkg still holds the lock for a while
    assert rollback_from_backup(tmp_path / "b", h.agent, h.transport, units_touched=False) == []
    assert h.package("app").status == "ii " and h.agent.state() == before
    assert dpkg.POLICY_RC not in h.agent.fs


def test_rollback_after_a_crash_around_dpkg_removes_the_uploaded_deb(tmp_path: Path) -> None:
    """A kill between the upload and dpkg (or after dpkg and before the removal): the package is as it
    was, so nothing reinstalls, and the .deb stayed in the agent's directory (/run, memory)."""
    h = host()
    pkg = package_for(h)
    before = h.agent.state()
    create_backup(pkg, h.agent, h.transport, tmp_path / "b", preflight(pkg, h.agent), max_file_bytes=1 << 20,
                  timeout=5)
    h.transport.files[f"/run/vmrepair/deb-{h.package('app').deb_sha256}.deb"] = h.package("app").deb
    assert rollback_from_backup(tmp_path / "b", h.agent, h.transport, units_touched=False) == []
    assert h.transport.files == {}, "the upload a crash left is removed"
    assert h.installs == [] and h.agent.state() == before


def test_a_dpkg_that_stays_locked_is_a_rollback_error_but_files_are_restored(tmp_path: Path) -> None:
    h = host()
    pkg = package_for(h)
    before = h.agent.state()
    create_backup(pkg, h.agent, h.transport, tmp_path / "b", preflight(pkg, h.agent), max_file_bytes=1 << 20,
                  timeout=5)
    h.agent.file(BIN, PRISTINE[BIN], 0o755)
    h.package("app").status = "iU "
    h.locked = 99
    errors = pkg_ops.settle(load_backup(tmp_path / "b").packages, load_backup(tmp_path / "b").deb_path,
                            h.agent, h.transport, timeout=5, sleep=lambda _s: None)
    assert len(errors) == 1 and "locked by another process" in errors[0]
    assert "dpkg --configure -a" in errors[0]
    assert rollback_from_backup(tmp_path / "b", h.agent, h.transport, units_touched=False)  # reported
    assert h.agent.state() == before


def test_configure_is_noted_as_not_undone_and_does_not_break_the_rollback(tmp_path: Path) -> None:
    h = host()
    app = h.package("app")
    pkg = FixPackage(id="pkg-2", created_at="2026-12-01T00:00:00+00:00",
                     operations=(DpkgConfigureOp("other"), UnitOp("app.service", "restart")),
                     blobs={}, issue={}, diagnosis={}, validation={}, reboot_required=False,
                     allowed_roots=("/etc",))
    result = apply_journalled(pkg, h.agent, h.transport, backup_dir=tmp_path / "b", validate=lambda: False)
    assert result.status == "rolled_back", result.errors
    assert "configured other (a rollback does not undo a configure)" in result.notes
    assert h.package("other").status == "ii " and app.status == "ii "
    argvs = h.transport.argvs
    configure = argvs.index(("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", "other"))
    assert argvs.index(tuple(dpkg.hold_services_argv())) < configure \
        < argvs.index(tuple(dpkg.release_services_argv()))
    assert load_backup(tmp_path / "b").holds_services and dpkg.POLICY_RC not in h.agent.fs


def test_a_policy_rc_a_crashed_configure_left_is_removed_by_the_rollback(tmp_path: Path) -> None:
    h = host()
    pkg = FixPackage(id="pkg-4", created_at="2026-12-01T00:00:00+00:00",
                     operations=(DpkgConfigureOp("other"),), blobs={}, issue={}, diagnosis={}, validation={},
                     reboot_required=False, allowed_roots=("/etc",))
    create_backup(pkg, h.agent, h.transport, tmp_path / "b", preflight(pkg, h.agent), max_file_bytes=1 << 20,
                  timeout=5)
    # The apply died with the services held: dpkg ran, our policy-rc.d (with its mark) stayed behind.
    h.agent.file(dpkg.POLICY_RC, dpkg.POLICY_RC_SCRIPT, 0o755)
    assert rollback_from_backup(tmp_path / "b", h.agent, h.transport, units_touched=False) == []
    assert dpkg.POLICY_RC not in h.agent.fs


def test_configure_failure_rolls_back(tmp_path: Path) -> None:
    h = host()
    h.configure_fails = True
    pkg = FixPackage(id="pkg-3", created_at="2026-12-01T00:00:00+00:00", operations=(DpkgConfigureOp("all"),),
                     blobs={}, issue={}, diagnosis={}, validation={}, reboot_required=False,
                     allowed_roots=("/etc",))
    result = apply_journalled(pkg, h.agent, h.transport, backup_dir=tmp_path / "b", validate=lambda: True)
    assert result.status == "rolled_back"
    assert result.errors[0].startswith("operation 0 (dpkg_configure) failed: dpkg --configure all exited 1")
