"""compute_package: operations derived from what changed in the VM, and every refusal."""

from __future__ import annotations

import pytest

from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import (
    ABSENT,
    DaemonReloadOp,
    MakeDirOp,
    RemoveFileOp,
    RotateLogOp,
    SetOwnerModeOp,
    SymlinkOp,
    UnitOp,
    WriteFileOp,
)
from tests.unit.apply.fakes import FakeFile, sha
from tests.unit.fixpkg.scenario import CONF, KEY, LOG, OLD, UNIT_FILE, build, make_target, make_vm

NEW_CONF = b"listen 80\nworkers 4\n"


def test_nothing_changed_gives_no_operations() -> None:
    target = make_target()
    pkg = build(target, make_vm(target))
    assert pkg.operations == ()
    assert pkg.issue["id"] == "app:unit_failed:1234abcd"


def test_modified_file_becomes_write_with_captured_precondition() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = NEW_CONF
    pkg = build(target, vm)
    assert pkg.operations == (
        WriteFileOp(CONF, sha(NEW_CONF), len(NEW_CONF), 0o644, 0, 0,
                    expect_sha256=sha(target.files[CONF].data)),
    )
    assert pkg.blob(sha(NEW_CONF)) == NEW_CONF


def test_added_file_expects_absent_and_maps_owner_to_target_uid() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files["/etc/app/conf.d/extra.conf"] = FakeFile(b"x = 1\n", 0o640, 104, 104)  # "app" in the VM
    mkdir, op = build(target, vm).operations
    assert mkdir == MakeDirOp("/etc/app/conf.d", 0o755, 0, 0)   # the new directory comes first
    assert isinstance(op, WriteFileOp)
    assert (op.path, op.expect_sha256, op.mode) == ("/etc/app/conf.d/extra.conf", ABSENT, 0o640)
    assert (op.uid, op.gid) == (101, 101)  # the target's id of "app", not the VM's 104


def test_removed_file_becomes_remove_with_precondition() -> None:
    target = make_target()
    vm = make_vm(target)
    del vm.files[OLD]
    assert build(target, vm).operations == (
        RemoveFileOp(OLD, expect_sha256=sha(target.files[OLD].data)),
    )


def test_meta_only_change_becomes_set_owner_mode_without_content() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[KEY].mode = 0o600
    pkg = build(target, vm)
    assert pkg.operations == (SetOwnerModeOp(KEY, "file", 0o600, 101, 101, 0o644, 101, 101,
                                             expect_sha256=sha(b"secret\n"), expect_target=None),)
    assert dict(pkg.blobs) == {}


def test_owner_unknown_on_target_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.names[999] = "mallory"
    vm.files["/etc/app/new.conf"] = FakeFile(b"x\n", 0o644, 999, 0)
    with pytest.raises(FixPackageError, match="'mallory' of the file in the VM owns no captured file"):
        build(target, vm)


def test_unit_file_change_adds_daemon_reload_before_replayed_units() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[UNIT_FILE].data += b"Restart=on-failure\n"
    pkg = build(target, vm, [{"op": "unit", "unit": "app.service", "action": "restart"}])
    assert [op.name for op in pkg.operations] == ["write_file", "daemon_reload", "unit"]
    assert pkg.operations[-1] == UnitOp("app.service", "restart")


def test_replayed_daemon_reload_is_folded_into_one() -> None:
    target = make_target()
    replay = [{"op": "daemon_reload"}, {"op": "unit", "unit": "app.service", "action": "start"},
              {"op": "daemon_reload"}]
    pkg = build(target, make_vm(target), replay)
    assert pkg.operations == (DaemonReloadOp(), UnitOp("app.service", "start"))


def test_placeholder_with_fake_content_never_becomes_a_write() -> None:
    target = make_target()
    vm = make_vm(target)   # the log's content differs (fake) but its metadata does not
    assert build(target, vm).operations == ()


def test_placeholder_metadata_change_without_replay_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[LOG].mode = 0o600
    with pytest.raises(FixPackageError) as info:
        build(target, vm)
    assert info.value.message.startswith(f"{LOG}: this large file was captured as a placeholder")


def test_placeholder_removed_without_replay_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    del vm.files[LOG]
    with pytest.raises(FixPackageError, match="placeholder"):
        build(target, vm)


def test_rotated_placeholder_is_left_to_the_replayed_rotation() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.rotate_log(LOG, method="compress")   # what the repair did in the VM: archive + truncate
    replay = [{"op": "rotate_log", "path": LOG, "method": "compress"},
              {"op": "unit", "unit": "app.service", "action": "restart"}]
    pkg = build(target, vm, replay)
    # The archive of fake content in the VM (app.log.1.gz) must not travel: the target makes its own.
    assert pkg.operations == (RotateLogOp(LOG, "compress"), UnitOp("app.service", "restart"))


def test_rotation_of_an_uncaptured_path_is_refused() -> None:
    target = make_target()
    replay = [{"op": "rotate_log", "path": "/var/log/other.log", "method": "truncate"}]
    with pytest.raises(FixPackageError, match=r"rotate_log /var/log/other.log: the path was not captured"):
        build(target, make_vm(target), replay)


def test_changed_path_outside_roots_is_refused_with_path_and_roots() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[UNIT_FILE].data = b"[Service]\nExecStart=/bin/sh\n"
    with pytest.raises(FixPackageError) as info:
        build(target, vm, roots=["/etc/app", "/var/log"])
    assert info.value.message == f"path {UNIT_FILE} is outside the allowed roots (/etc/app, /var/log)"


def test_traversal_in_a_vm_path_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files["/etc/app/../../root/.ssh/authorized_keys"] = FakeFile(b"ssh-ed25519 AAAA\n")
    with pytest.raises(FixPackageError, match=r"contains '\.\.' \(path traversal is refused\)"):
        build(target, vm)


def test_traversal_in_a_replayed_rotation_is_refused() -> None:
    target = make_target()
    replay = [{"op": "rotate_log", "path": "/var/log/../../etc/shadow", "method": "truncate"}]
    with pytest.raises(FixPackageError, match=r"replay_ops\[0\]: .*contains '\.\.'"):
        build(target, make_vm(target), replay)


@pytest.mark.parametrize(("item", "message"), [
    ({"op": "unit", "unit": "app.service; reboot", "action": "restart"}, "not a valid unit name"),
    ({"op": "unit", "unit": "-H.service", "action": "restart"}, "not a valid unit name"),
    ({"op": "unit", "unit": "app.service", "action": "mask"}, "unit action 'mask'"),
    ({"op": "unit", "unit": "app.service", "action": "restart", "x": 1}, "unknown keys ['x']"),
    ({"op": "write_file", "path": CONF}, "replay_ops[0].op: 'write_file' is not one of"),
    ({"op": "rotate_log", "path": LOG, "method": "delete"}, "rotate method 'delete'"),
    ("restart app", "replay_ops[0]: expected an object"),
])
def test_invalid_replay_operations_are_refused(item: object, message: str) -> None:
    target = make_target()
    with pytest.raises(FixPackageError) as info:
        build(target, make_vm(target), [item])  # type: ignore[list-item]
    assert message in info.value.message


def test_retargeted_symlink_becomes_a_symlink_op_expecting_the_old_target() -> None:
    target = make_target()
    target.symlinks["/etc/app/current"] = "/etc/app/v1"
    vm = make_vm(target)
    vm.symlinks["/etc/app/current"] = "/etc/app/v2"
    assert build(target, vm).operations == (
        SymlinkOp("/etc/app/current", "/etc/app/v2", 0, 0, expect_target="/etc/app/v1"),)


def test_identical_symlink_is_fine() -> None:
    target = make_target()
    target.symlinks["/etc/app/current"] = "/etc/app/v1"
    assert build(target, make_vm(target)).operations == ()


def test_file_replaced_by_symlink_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    del vm.files[CONF]
    vm.symlinks[CONF] = "/tmp/evil.conf"
    with pytest.raises(FixPackageError, match=f"{CONF}: changed from a file to a symlink in the VM"):
        build(target, vm)


def test_new_empty_directory_becomes_make_dir() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.mkdir("/etc/app/empty.d", 0o750)
    assert build(target, vm).operations == (MakeDirOp("/etc/app/empty.d", 0o750, 0, 0),)


def test_file_too_large_for_a_package_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = b"x" * 5000
    with pytest.raises(FixPackageError, match="5000 bytes, more than the 4096"):
        build(target, vm, max_file_bytes=4096)


def test_content_changing_while_read_is_refused() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = NEW_CONF
    after = vm.manifest(["/etc/app"])
    vm.files[CONF].data = b"something else\n"
    from orchestrator.fixpkg import compute_package

    with pytest.raises(FixPackageError, match="changed while the package was built"):
        compute_package(target.manifest(["/etc/app"]), after, vm, [], placeholders=set(),
                        allowed_roots=["/etc"], diagnosis={}, validation={}, issue={},
                        reboot_required=False)


def test_diffs_for_text_files_when_the_original_is_at_hand() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = NEW_CONF
    vm.files["/etc/app/blob.bin"] = FakeFile(b"\0\1\2")
    pkg = build(target, vm, before_content=lambda path: target.files[path].data)
    assert "-workers 0\n+workers 4\n" in pkg.diffs[CONF]
    assert "/etc/app/blob.bin" not in pkg.diffs   # binary: no diff


def test_no_misleading_diff_without_the_original() -> None:
    target = make_target()
    vm = make_vm(target)
    vm.files[CONF].data = NEW_CONF
    assert CONF not in build(target, vm).diffs
