"""compute_package for symlinks, directories, owner/mode changes and unit-file states."""

from __future__ import annotations

import pytest

from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import (
    DaemonReloadOp,
    MakeDirOp,
    RemoveDirOp,
    RemoveFileOp,
    RemoveSymlinkOp,
    SetOwnerModeOp,
    SymlinkOp,
    UnitStateOp,
    WriteFileOp,
)
from orchestrator.fixpkg.compute import compute_package
from tests.unit.apply.fakes import FakeAgent, FakeFile, sha
from tests.unit.fake_agent import Node
from tests.unit.fixpkg.scenario import build, make_target, make_vm

ETC_UNITS = "/etc/systemd/system"
UNIT_PATHS = ["/etc/app", ETC_UNITS]
MASK = {"op": "unit_state", "unit": "app.service", "state": "masked", "expect": "enabled"}


def test_new_and_removed_symlinks_dangling_included() -> None:
    target = make_target()
    target.symlinks["/etc/app/old-link"] = "/nowhere"
    vm = make_vm(target)
    del vm.symlinks["/etc/app/old-link"]
    vm.symlinks["/etc/app/new-link"] = "../missing"
    assert build(target, vm).operations == (
        SymlinkOp("/etc/app/new-link", "../missing", 0, 0, expect_target=None),
        RemoveSymlinkOp("/etc/app/old-link", expect_target="/nowhere"),
    )


def test_symlink_owner_change_is_an_lchown() -> None:
    target = make_target()
    target.symlinks["/etc/app/l"] = "x"
    vm = make_vm(target)
    vm.fs["/etc/app/l"].uid = vm.fs["/etc/app/l"].gid = 104   # "app" in the VM
    assert build(target, vm).operations == (
        SetOwnerModeOp("/etc/app/l", "symlink", 0o777, 101, 101, 0o777, 0, 0, None, expect_target="x"),)


def test_directory_mode_change_and_new_tree_parent_first() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.fs["/etc/app"].mode = 0o750
    vm.files["/etc/app/a/b/c.conf"] = FakeFile(b"c\n")
    ops = build(target, vm).operations
    assert ops[:3] == (MakeDirOp("/etc/app/a", 0o755, 0, 0), MakeDirOp("/etc/app/a/b", 0o755, 0, 0),
                       SetOwnerModeOp("/etc/app", "dir", 0o750, 0, 0, 0o755, 0, 0, None, None))
    assert isinstance(ops[3], WriteFileOp) and ops[3].path == "/etc/app/a/b/c.conf"


def test_removed_tree_goes_children_first() -> None:
    target = make_target()
    target.files["/etc/app/x/y/z.conf"] = FakeFile(b"z\n")
    vm = make_vm(target)
    for path in ("/etc/app/x/y/z.conf", "/etc/app/x/y", "/etc/app/x"):
        del vm.fs[path]
    assert build(target, vm).operations == (
        RemoveFileOp("/etc/app/x/y/z.conf", sha(b"z\n")), RemoveDirOp("/etc/app/x/y"),
        RemoveDirOp("/etc/app/x"))


def test_special_file_is_still_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.fs["/etc/app/fifo"] = Node("other")
    with pytest.raises(FixPackageError, match=r"/etc/app/fifo: a special file"):
        build(target, vm)


def test_unit_state_explains_its_links_and_they_are_not_copied() -> None:
    target = make_target()
    target.mkdir(f"{ETC_UNITS}/multi-user.target.wants")
    target.symlinks[f"{ETC_UNITS}/multi-user.target.wants/other.service"] = "/lib/systemd/system/o.service"
    vm = make_vm(target)
    # What `systemctl mask app.service` and `enable app.service` (with Also=app.socket) write.
    vm.symlinks[f"{ETC_UNITS}/multi-user.target.wants/app.service"] = f"{ETC_UNITS}/app.service"
    vm.symlinks[f"{ETC_UNITS}/sockets.target.wants/app.socket"] = "/lib/systemd/system/app.socket"
    vm.symlinks[f"{ETC_UNITS}/app-alias.service"] = "/lib/systemd/system/app.service"
    # Not the unit's: still a symlink operation of its own.
    vm.symlinks[f"{ETC_UNITS}/multi-user.target.wants/other2.service"] = "/lib/systemd/system/other2.service"
    pkg = compute_package(
        target.manifest(UNIT_PATHS), vm.manifest(UNIT_PATHS), vm, [MASK], placeholders=set(),
        allowed_roots=["/etc"], diagnosis={}, validation={}, issue={}, reboot_required=False)
    assert pkg.operations == (
        SymlinkOp(f"{ETC_UNITS}/multi-user.target.wants/other2.service", "/lib/systemd/system/other2.service",
                  0, 0, expect_target=None),
        DaemonReloadOp(),
        UnitStateOp("app.service", "masked", "enabled"),
    )


def test_without_a_unit_state_the_same_links_are_symlink_ops() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.symlinks[f"{ETC_UNITS}/app.service.d-link"] = "/dev/null"
    vm.fs.pop(f"{ETC_UNITS}/app.service")
    vm.symlinks[f"{ETC_UNITS}/app.service"] = "/dev/null"
    with pytest.raises(FixPackageError, match="changed from a file to a symlink"):
        build(target, vm, roots=["/etc"])   # a regular unit file is never "explained" away


def test_a_unit_state_set_twice_is_refused() -> None:
    target = make_target()
    unmask = {**MASK, "state": "unmasked", "expect": "masked"}
    with pytest.raises(FixPackageError, match="changed its unit-file state more than once"):
        build(target, make_vm(target), [MASK, unmask])


# -- meta paths: the VM's own file, never its content --------------------------------------------

SHADOW = "/etc/shadow"
TARGET_SHADOW = b"root:$y$target-hash:19700:0:99999:7:::\n"
VM_SHADOW = b"root:$y$the-vms-own-hash:19700:0:99999:7:::\n"
SHADOW_NAMES = {0: "root", 42: "shadow"}


def _shadow_package(vm_mode: int, *, in_vm: bool = True) -> tuple[tuple[object, ...], dict[str, bytes]]:
    target = FakeAgent(files={SHADOW: FakeFile(TARGET_SHADOW, 0o644, 0, 42)}, names=SHADOW_NAMES)
    vm = FakeAgent(files={SHADOW: FakeFile(VM_SHADOW, vm_mode, 0, 42)} if in_vm else {}, names=SHADOW_NAMES)
    package = compute_package(
        target.manifest([SHADOW], recursive=False), vm.manifest([SHADOW], recursive=False), vm, [],
        placeholders=set(), allowed_roots=["/etc/nginx"], diagnosis={}, validation={}, issue={},
        reboot_required=False, meta_only=[SHADOW])
    assert not any(method == "read_file" for method, _ in vm.calls)   # the VM's content is never read
    return package.operations, package.blobs


def test_a_meta_path_file_packages_its_mode_with_the_targets_digest_never_the_vms_content() -> None:
    ops, blobs = _shadow_package(0o640)
    assert ops == (SetOwnerModeOp(SHADOW, "file", 0o640, 0, 42, 0o644, 0, 42, sha(TARGET_SHADOW), None),)
    assert blobs == {}


def test_a_meta_path_file_whose_mode_did_not_change_packages_nothing_though_contents_differ() -> None:
    ops, blobs = _shadow_package(0o644)
    assert ops == () and blobs == {}


def test_a_meta_path_file_gone_from_the_vm_is_refused_not_removed() -> None:
    with pytest.raises(FixPackageError, match=r"captured by its metadata only .* removed in the VM"):
        _shadow_package(0o640, in_vm=False)


def test_without_meta_only_the_same_difference_would_carry_the_vms_content() -> None:
    # Why meta_only exists: a digest comparison sees new content, and write_file would ship it.
    target = FakeAgent(files={SHADOW: FakeFile(TARGET_SHADOW, 0o644, 0, 42)}, names=SHADOW_NAMES)
    vm = FakeAgent(files={SHADOW: FakeFile(VM_SHADOW, 0o640, 0, 42)}, names=SHADOW_NAMES)
    package = compute_package(
        target.manifest([SHADOW], recursive=False), vm.manifest([SHADOW], recursive=False), vm, [],
        placeholders=set(), allowed_roots=["/etc"], diagnosis={}, validation={}, issue={},
        reboot_required=False)
    assert isinstance(package.operations[0], WriteFileOp) and VM_SHADOW in package.blobs.values()
