"""Node and unit-state operations: invariants, JSON form (errors name the key), and package order."""

from __future__ import annotations

from typing import Any

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
    UnitOp,
    UnitStateOp,
    WriteFileOp,
)
from orchestrator.fixpkg.ops import ABSENT, Operation, op_from_dict, op_to_dict, validate_operations

SHA = "a" * 64
ROOTS = ["/etc"]


@pytest.mark.parametrize("op", [
    SymlinkOp("/etc/a/link", "../target with space", 0, 0, expect_target=None),
    SymlinkOp("/etc/a/link", "/nowhere/dangling", 1, 2, expect_target="/old"),
    RemoveSymlinkOp("/etc/a/link", expect_target="/old"),
    MakeDirOp("/etc/a/d", 0o2750, 0, 33),
    RemoveDirOp("/etc/a/d"),
    SetOwnerModeOp("/etc/a/f", "file", 0o600, 0, 0, 0o644, 0, 0, expect_sha256=SHA, expect_target=None),
    SetOwnerModeOp("/etc/a/d", "dir", 0o700, 0, 0, 0o755, 0, 0, expect_sha256=None, expect_target=None),
    SetOwnerModeOp("/etc/a/l", "symlink", 0o777, 33, 33, 0o777, 0, 0, expect_sha256=None, expect_target="x"),
    UnitStateOp("app.service", "masked", "enabled"),
])
def test_json_round_trip(op: Operation) -> None:
    assert op_from_dict(op_to_dict(op), "operations[0]") == op


@pytest.mark.parametrize(("build", "message"), [
    (lambda: SymlinkOp("/etc/a", "", 0, 0, None), "target must be non-empty"),
    (lambda: SymlinkOp("/etc/a", "x\0y", 0, 0, None), "contains NUL/newlines"),
    (lambda: SymlinkOp("/etc/a", "x\ny", 0, 0, None), "contains NUL/newlines"),
    (lambda: SymlinkOp("/etc/a", "x" * 4096, 0, 0, None), "too long"),
    (lambda: SymlinkOp("/etc//a", "x", 0, 0, None), "not in canonical form"),
    (lambda: MakeDirOp("/etc/a", 0o10000, 0, 0), "not a permission mode"),
    (lambda: SetOwnerModeOp("/etc/a", "fifo", 0, 0, 0, 1, 0, 0, None, None), "kind 'fifo'"),
    (lambda: SetOwnerModeOp("/etc/a", "file", 0o600, 0, 0, 0o600, 0, 0, SHA, None), "changes nothing"),
    (lambda: SetOwnerModeOp("/etc/a", "file", 0o600, 0, 0, 0o644, 0, 0, None, None),
     "expect_sha256 is required"),
    (lambda: SetOwnerModeOp("/etc/a", "dir", 0o600, 0, 0, 0o644, 0, 0, None, "x"),
     "expect_target is required"),
    (lambda: SetOwnerModeOp("/etc/a", "symlink", 0o700, 0, 0, 0o777, 0, 0, None, "x"), "no lchmod"),
    (lambda: UnitStateOp("app.service", "frozen", "enabled"), "unit state 'frozen'"),
    (lambda: UnitStateOp("-H.service", "masked", "enabled"), "not a valid unit name"),
    (lambda: UnitStateOp("app.service", "masked", "linked"), "was 'linked'"),
])
def test_invariants_are_checked_on_construction(build: Any, message: str) -> None:
    with pytest.raises(FixPackageError, match=message):
        build()


@pytest.mark.parametrize(("data", "message"), [
    ({"op": "symlink", "path": "/etc/a", "target": "x", "uid": 0, "gid": 0},
     "operations[0].expect_target: missing"),
    ({"op": "symlink", "path": "/etc/a", "target": None, "uid": 0, "gid": 0, "expect_target": None},
     "operations[0].target: expected a string"),
    ({"op": "remove_symlink", "path": "/etc/a", "expect_target": None},
     "operations[0].expect_target: expected a string, got None"),
    ({"op": "make_dir", "path": "/etc/a", "mode": "755", "uid": 0, "gid": 0},
     "operations[0].mode: expected an integer"),
    ({"op": "remove_dir", "path": "/etc/a", "recursive": True}, "unknown keys ['recursive']"),
    ({"op": "unit_state", "unit": "a.service", "state": "masked"}, "operations[0].expect: missing"),
])
def test_from_dict_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(FixPackageError) as info:
        op_from_dict(data, "operations[0]")
    assert message in info.value.message


def _write(path: str) -> WriteFileOp:
    return WriteFileOp(path, SHA, 1, 0o644, 0, 0, ABSENT)


def test_valid_order_parent_first_and_children_removed_first() -> None:
    validate_operations([
        MakeDirOp("/etc/new", 0o755, 0, 0), MakeDirOp("/etc/new/sub", 0o755, 0, 0), _write("/etc/new/sub/f"),
        SymlinkOp("/etc/new/l", "f", 0, 0, None), RemoveFileOp("/etc/old/f", SHA),
        RemoveSymlinkOp("/etc/old/l", "x"), RemoveDirOp("/etc/old/sub"), RemoveDirOp("/etc/old"),
        DaemonReloadOp(), UnitStateOp("a.service", "enabled", "disabled"), UnitOp("a.service", "restart"),
    ], ROOTS)


@pytest.mark.parametrize(("ops", "message"), [
    ([_write("/etc/new/f"), MakeDirOp("/etc/new", 0o755, 0, 0)], "creates /etc/new after /etc/new/f"),
    ([RemoveDirOp("/etc/old"), RemoveFileOp("/etc/old/f", SHA)], "after its directory /etc/old is removed"),
    ([SymlinkOp("/etc/a", "x", 0, 0, None), RemoveSymlinkOp("/etc/a", "x")], "second operation on /etc/a"),
    ([UnitOp("a.service", "restart"), UnitStateOp("a.service", "enabled", "disabled")], "out of order"),
    ([UnitStateOp("a.service", "enabled", "disabled"), DaemonReloadOp()], "out of order"),
    ([UnitStateOp("a.service", "enabled", "disabled"), UnitStateOp("a.service", "masked", "disabled")],
     "second unit_state of a.service"),
    ([SymlinkOp("/etc/systemd/system/a.service", "/dev/null", 0, 0, None)], "no daemon_reload"),
    ([MakeDirOp("/var/x", 0o755, 0, 0)], "outside the allowed roots"),
])
def test_broken_order_is_refused(ops: list[Operation], message: str) -> None:
    with pytest.raises(FixPackageError, match=message):
        validate_operations(ops, ROOTS)
