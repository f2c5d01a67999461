"""deb_install and dpkg_configure operations: their JSON form, hostile values refused, ordering, the
.deb as a blob, and compute leaving a reinstalled package's files to the reinstall."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orchestrator.dpkg import PackagedFiles
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import DaemonReloadOp, DebInstallOp, DpkgConfigureOp, FixPackage, UnitOp, WriteFileOp
from orchestrator.fixpkg.ops import op_from_dict, validate_operations
from tests.unit.apply.fakes import FakeAgent, FakeFile
from tests.unit.fixpkg.scenario import CONF, UNIT_FILE, build, make_target, make_vm

DEB = b"!<arch>\nfake deb\n"
SHA = hashlib.sha256(DEB).hexdigest()
INSTALL = {"op": "deb_install", "package": "app", "version": "1:1.0-1+deb12u1", "architecture": "amd64",
           "sha256": SHA, "size": len(DEB)}


def test_deb_install_round_trips() -> None:
    op = op_from_dict(INSTALL, "operations[0]")
    assert op == DebInstallOp("app", "1:1.0-1+deb12u1", "amd64", SHA, len(DEB)) and op.spec == "app:amd64"
    assert op_from_dict({"op": "dpkg_configure", "package": "all"}, "x") == DpkgConfigureOp("all")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("package", "-oDpkg::x", "'-oDpkg::x' is not a Debian package name"),
    ("package", "app;rm -rf /", "is not a Debian package name"),
    ("package", "app\n", "is not a Debian package name"),
    ("package", "a", "'a' is not a Debian package name"),
    ("package", "App", "is not a Debian package name"),
    ("version", "1.0 --force-all", "is not a Debian version"),
    ("version", "../../1.0", "is not a Debian version"),
    ("architecture", "amd64\n", "is not a Debian architecture"),
    ("sha256", "A" * 64, "is not a lowercase hex sha256"),
    ("size", 0, "a .deb of 0 bytes"),
    ("size", True, "expected an integer"),
])
def test_hostile_deb_install_fields_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(FixPackageError, match="operations\\[0\\]") as caught:
        op_from_dict({**INSTALL, key: value}, "operations[0]")
    assert message in caught.value.message


@pytest.mark.parametrize("package", ["-a", "--pending", "*", "", "x y"])
def test_hostile_configure_targets_are_refused(package: str) -> None:
    with pytest.raises(FixPackageError, match="is not a Debian package name"):
        op_from_dict({"op": "dpkg_configure", "package": package}, "operations[0]")


def test_package_ops_go_after_files_and_before_reload_and_units() -> None:
    install = DebInstallOp("app", "1.0", "amd64", SHA, len(DEB))
    write = WriteFileOp("/etc/app/x", SHA, 1, 0o644, 0, 0, "absent")
    validate_operations([write, install, DpkgConfigureOp("all"), DaemonReloadOp(),
                         UnitOp("a.service", "start")], ["/etc"])
    with pytest.raises(FixPackageError, match=r"operations\[1\] \(deb_install\) is out of order"):
        validate_operations([DaemonReloadOp(), install], ["/etc"])
    with pytest.raises(FixPackageError, match=r"operations\[2\] \(write_file\) is out of order"):
        validate_operations([write, install, write], ["/etc"])
    with pytest.raises(FixPackageError, match="app:amd64 is reinstalled twice"):
        validate_operations([install, install], ["/etc"])


def test_the_deb_travels_as_a_verified_blob(tmp_path: Path) -> None:
    op = DebInstallOp("app", "1.0", "amd64", SHA, len(DEB))
    pkg = FixPackage(id="p1", created_at="t", operations=(op,), blobs={SHA: DEB}, issue={}, diagnosis={},
                     validation={}, reboot_required=False, allowed_roots=("/etc",))
    pkg.save(tmp_path / "p")
    assert FixPackage.load(tmp_path / "p").blob(SHA) == DEB
    (tmp_path / "p" / "files" / SHA).write_bytes(b"!<arch>\nevil deb\n")
    with pytest.raises(FixPackageError, match=r"content of the \.deb of app:amd64 1\.0 .* does not match"):
        FixPackage.load(tmp_path / "p")
    with pytest.raises(FixPackageError, match=r"the \.deb of app:amd64 1\.0: content .* missing"):
        FixPackage(id="p2", created_at="t", operations=(op,), blobs={}, issue={}, diagnosis={},
                   validation={}, reboot_required=False, allowed_roots=("/etc",))


def _reinstall_scenario() -> tuple[FakeAgent, FakeAgent, list[dict[str, object]]]:
    target = make_target()
    vm = make_vm(target)
    target.files[UNIT_FILE].data = b"[Service]\nExecStart=/usr/bin/broken\n"
    vm.files[UNIT_FILE].data = b"[Service]\nExecStart=/usr/bin/app\n"          # restored by the reinstall
    vm.files[CONF].data = b"listen 80\nworkers 4\n"                             # changed by another step
    vm.files["/etc/app/conf.d/extra.conf"] = FakeFile(b"x\n", 0o644, 0, 0)
    replay = [{**INSTALL, "version": "1.0"}, {"op": "unit", "unit": "app.service", "action": "restart"}]
    return target, vm, replay


def test_compute_leaves_packaged_files_to_the_reinstall_but_keeps_conffiles() -> None:
    target, vm, replay = _reinstall_scenario()
    owned = PackagedFiles(frozenset({UNIT_FILE, CONF, "/usr/bin/app"}), frozenset({CONF}))
    pkg = build(target, vm, replay, deb_content=lambda op: DEB, package_files=lambda op: owned)
    names = [(op.name, getattr(op, "path", getattr(op, "package", ""))) for op in pkg.operations]
    # The new directory is an operation of its own (created before the file in it).
    assert names == [("make_dir", "/etc/app/conf.d"), ("write_file", CONF),
                     ("write_file", "/etc/app/conf.d/extra.conf"), ("deb_install", "app"),
                     ("daemon_reload", ""), ("unit", "")]
    assert pkg.blob(SHA) == DEB


def test_compute_refuses_a_reinstall_without_its_deb_or_file_list() -> None:
    target, vm, replay = _reinstall_scenario()
    owned = PackagedFiles(frozenset({UNIT_FILE}), frozenset())
    with pytest.raises(FixPackageError, match="the files it restores cannot be listed"):
        build(target, vm, replay, deb_content=lambda op: DEB)
    with pytest.raises(FixPackageError, match=r"the verified \.deb the repair installed is not available"):
        build(target, vm, replay, deb_content=lambda op: b"tampered",
              package_files=lambda op: owned)
