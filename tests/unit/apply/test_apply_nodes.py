"""Applying and rolling back symlink, directory, owner/mode and unit-file state operations."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest

from orchestrator.apply.backup import load_backup
from orchestrator.apply.restore import rollback_from_backup
from orchestrator.apply.unit_states import restore_unit_state
from orchestrator.fixpkg import (
    DaemonReloadOp,
    FixPackage,
    MakeDirOp,
    RemoveDirOp,
    RemoveSymlinkOp,
    SetMetaOp,
    SetOwnerModeOp,
    SymlinkOp,
    UnitStateOp,
    WriteFileOp,
)
from orchestrator.fixpkg.ops import ABSENT, Operation
from orchestrator.transport.fake import FakeTransport
from tests.unit.apply.conftest import apply_journalled, txn_state
from tests.unit.apply.fakes import FakeAgent, FakeFile, sha

KEY_DATA = b"secret\n"
NEW = b"new\n"


def _host() -> FakeAgent:
    host = FakeAgent(files={"/etc/app/key": FakeFile(KEY_DATA, 0o644, 0, 0),
                            "/etc/app/gone.d/old.conf": FakeFile(b"old\n")},
                     symlinks={"/etc/app/current": "v1", "/etc/app/stale": "/nowhere"})
    host.fs["/etc/app/gone.d"].mode = 0o750
    return host


def _ops() -> tuple[Operation, ...]:
    from orchestrator.fixpkg import RemoveFileOp
    return (
        MakeDirOp("/etc/app/new.d", 0o2750, 0, 33), MakeDirOp("/etc/app/new.d/sub", 0o700, 0, 0),
        SymlinkOp("/etc/app/current", "v2", 0, 0, expect_target="v1"),
        SetOwnerModeOp("/etc/app/key", "file", 0o600, 0, 0, 0o644, 0, 0, sha(KEY_DATA), None),
        WriteFileOp("/etc/app/new.d/sub/a.conf", sha(NEW), len(NEW), 0o640, 0, 0, ABSENT),
        SymlinkOp("/etc/app/new.d/link", "../missing", 0, 0, expect_target=None),
        RemoveSymlinkOp("/etc/app/stale", "/nowhere"),
        RemoveFileOp("/etc/app/gone.d/old.conf", sha(b"old\n")),
        RemoveDirOp("/etc/app/gone.d"),
    )


def _package(ops: tuple[Operation, ...] | None = None) -> FixPackage:
    return FixPackage(id="nodes", created_at="2026-12-06T00:00:00+00:00", operations=ops or _ops(),
                      blobs={sha(NEW): NEW}, issue={}, diagnosis={}, validation={}, reboot_required=False,
                      allowed_roots=("/etc",))


def _snapshot(host: FakeAgent) -> dict[str, tuple[object, ...]]:
    return {p: (n.type, n.data, n.mode, n.uid, n.gid, n.link) for p, n in sorted(host.fs.items())}


class Systemd:
    """systemctl on a fake target: is-enabled answers from ``states``; the four verbs change them."""

    VERBS: ClassVar[dict[str, str]] = {"enable": "enabled", "disable": "disabled"}

    def __init__(self, states: dict[str, str]) -> None:
        self.states, self.argvs = states, []
        # What is-enabled says once the mask link is gone: it is computed from the other files.
        self.under_mask = dict.fromkeys(states, "disabled")
        self.transport = FakeTransport(self.handle, host="target")

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        self.argvs.append(argv)
        verb, unit = argv[1], argv[-1]
        if verb == "is-enabled":
            state = self.states[unit]
            return (0 if state == "enabled" else 1), f"{state}\n".encode(), b""
        if verb == "unmask":
            if self.states[unit] == "masked":
                self.states[unit] = self.under_mask[unit]
        elif verb == "mask":
            self.under_mask[unit] = self.states[unit]
            self.states[unit] = "masked"
        elif verb in self.VERBS:
            if self.states[unit] == "masked" and verb != "mask":
                return 1, b"", b"Unit file is masked.\n"
            self.states[unit] = self.VERBS[verb]
        return 0, b"", b""


@pytest.mark.parametrize("validates", [True, False])
def test_apply_then_keep_or_roll_back_exactly(tmp_path: Path, validates: bool) -> None:
    host = _host()
    before = _snapshot(host)
    result = apply_journalled(_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                              validate=lambda: validates)
    if validates:
        assert result.status == "applied"
        assert host.fs["/etc/app/new.d"].mode == 0o2750 and host.fs["/etc/app/new.d"].gid == 33
        assert host.symlinks["/etc/app/current"] == "v2"
        assert host.symlinks["/etc/app/new.d/link"] == "../missing"
        assert host.files["/etc/app/key"].mode == 0o600
        assert "/etc/app/gone.d" not in host.fs and "/etc/app/stale" not in host.fs
        # A meta-only change is a chmod, never a rewrite of the content.
        assert ("set_meta", "/etc/app/key") in host.mutations
        assert not any(m == ("write_file", "/etc/app/key") for m in host.mutations)
    else:
        assert result.status == "rolled_back", result.errors
        assert _snapshot(host) == before
        assert txn_state(tmp_path / "b", result.txn_id).state == "rolled_back"


def test_backup_records_what_each_path_was(tmp_path: Path) -> None:
    host = _host()
    apply_journalled(_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                     validate=lambda: True)
    entries = {e.path: e for e in load_backup(tmp_path / "b").entries}
    assert (entries["/etc/app/new.d"].existed, entries["/etc/app/new.d"].kind) == (False, "dir")
    assert (entries["/etc/app/current"].kind, entries["/etc/app/current"].link) == ("symlink", "v1")
    assert (entries["/etc/app/gone.d"].kind, entries["/etc/app/gone.d"].mode) == ("dir", 0o750)
    # set_owner_mode never changes content: its file is backed up by its metadata, never its bytes.
    key = entries["/etc/app/key"]
    assert (key.kind, key.sha256, key.mode) == ("file_meta", sha(KEY_DATA), 0o644)
    assert not (tmp_path / "b" / "files" / sha(KEY_DATA)).exists()


SHADOW_DATA = b"root:$y$EVERYPASSWORDHASH:19700:0:99999:7:::\n"


def _shadow_host() -> FakeAgent:
    return FakeAgent(files={"/etc/shadow": FakeFile(SHADOW_DATA, 0o644, 0, 42)},
                     names={0: "root", 42: "shadow"})


def _shadow_package() -> FixPackage:
    op = SetOwnerModeOp("/etc/shadow", "file", 0o640, 0, 42, 0o644, 0, 42, sha(SHADOW_DATA), None)
    return dataclasses.replace(_package((op,)), blobs={}, allowed_roots=("/etc/nginx",))


def test_shadows_mode_is_rolled_back_without_its_content_leaving_the_target(tmp_path: Path) -> None:
    host = _shadow_host()
    result = apply_journalled(_shadow_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                              validate=lambda: False)
    assert result.status == "rolled_back", result.errors
    assert host.files["/etc/shadow"].mode == 0o644 and host.files["/etc/shadow"].data == SHADOW_DATA
    assert ("set_meta", "/etc/shadow") in host.mutations and host.writes == 0
    assert not any(method == "read_file" for method, _ in host.calls)
    for written in (tmp_path / "b").rglob("*"):
        assert not written.is_file() or b"EVERYPASSWORDHASH" not in written.read_bytes(), written


def test_shadows_mode_is_applied_under_its_captured_state(tmp_path: Path) -> None:
    host = _shadow_host()
    result = apply_journalled(_shadow_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                              validate=lambda: True)
    assert result.status == "applied", result.errors
    shadow = host.files["/etc/shadow"]
    assert (shadow.mode, shadow.uid, shadow.gid, shadow.data) == (0o640, 0, 42, SHADOW_DATA)


def test_a_file_backed_up_by_its_metadata_cannot_be_recreated_and_says_so() -> None:
    from orchestrator.apply.entries import BackupEntry
    from orchestrator.apply.fs_ops import restore_entry
    from orchestrator.errors import ApplyError

    entry = BackupEntry("/etc/shadow", True, "file_meta", sha(SHADOW_DATA), len(SHADOW_DATA), 0o640, 0, 42)

    def no_content(entry: BackupEntry) -> bytes:
        raise AssertionError("a file_meta entry has no content to read")

    with pytest.raises(ApplyError, match="only its mode and owner were backed up"):
        restore_entry(no_content, entry, None, FakeAgent())


def test_restore_is_idempotent_after_a_crash_midway(tmp_path: Path) -> None:
    host = _host()
    before = _snapshot(host)
    apply_journalled(_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                     validate=lambda: True)
    assert rollback_from_backup(tmp_path / "b", host, Systemd({}).transport) == []
    assert _snapshot(host) == before
    host.mutations.clear()
    assert rollback_from_backup(tmp_path / "b", host, Systemd({}).transport) == []
    assert host.mutations == [] and _snapshot(host) == before


@pytest.mark.parametrize(("change", "message"), [
    (lambda h: h.symlinks.__setitem__("/etc/app/current", "v9"),
     "/etc/app/current (expected a symlink link 'v1'"),
    (lambda h: h.mkdir("/etc/app/new.d"), "/etc/app/new.d (expected absent; it is a dir"),
    (lambda h: setattr(h.files["/etc/app/key"], "mode", 0o640), "/etc/app/key (expected a file"),
    (lambda h: h.file("/etc/app/gone.d/extra", b"x"), "it holds /etc/app/gone.d/extra, which the package"),
    (lambda h: h.symlinks.__delitem__("/etc/app/stale"), "/etc/app/stale (expected a symlink"),
])
def test_preflight_refuses_a_target_that_changed(tmp_path: Path, change: object, message: str) -> None:
    host = _host()
    change(host)  # type: ignore[operator]
    host.mutations.clear()
    result = apply_journalled(_package(), host, Systemd({}).transport, backup_dir=tmp_path / "b",
                              validate=lambda: True)
    assert result.status == "aborted" and host.mutations == []
    assert result.errors[0].startswith("target changed since capture:") and message in result.errors[0]


def test_legacy_set_meta_is_a_chmod_under_its_content_precondition(tmp_path: Path) -> None:
    host = _host()
    pkg = _package((SetMetaOp("/etc/app/key", 0o600, 0, 0, sha(KEY_DATA)),))
    assert apply_journalled(pkg, host, Systemd({}).transport, backup_dir=tmp_path / "b",
                            validate=lambda: True).status == "applied"
    assert host.files["/etc/app/key"].mode == 0o600 and host.writes == 0


@pytest.mark.parametrize(("prior", "state"), [
    ("enabled", "masked"), ("disabled", "enabled"), ("enabled", "disabled"), ("masked", "unmasked"),
    ("static", "masked"),
])
def test_unit_state_is_applied_then_restored_exactly(tmp_path: Path, prior: str, state: str) -> None:
    host = _host()
    systemd = Systemd({"app.service": prior})
    pkg = _package((DaemonReloadOp(), UnitStateOp("app.service", state, prior)))
    result = apply_journalled(pkg, host, systemd.transport, backup_dir=tmp_path / "b", validate=lambda: False)
    assert result.status == "rolled_back", result.errors
    assert systemd.states["app.service"] == prior
    assert ("systemctl", UnitStateOp("app.service", state, prior).verb, "--", "app.service") in systemd.argvs


def test_unit_state_precondition_refuses_a_changed_unit(tmp_path: Path) -> None:
    systemd = Systemd({"app.service": "masked"})
    pkg = _package((UnitStateOp("app.service", "disabled", "enabled"),))
    result = apply_journalled(pkg, _host(), systemd.transport, backup_dir=tmp_path / "b",
                              validate=lambda: True)
    assert result.status == "aborted"
    assert result.errors == ("target changed since capture: unit app.service is masked, expected enabled",)
    assert [a[1] for a in systemd.argvs] == ["is-enabled"]


def test_restore_unit_state_undoes_mask_and_enable() -> None:
    systemd = Systemd({"a.service": "masked", "b.service": "enabled", "c.service": "disabled"})
    assert restore_unit_state(systemd.transport, "a.service", "enabled", timeout=5) is None
    assert restore_unit_state(systemd.transport, "b.service", "static", timeout=5) is None
    assert restore_unit_state(systemd.transport, "c.service", "masked", timeout=5) is None
    assert systemd.states == {"a.service": "enabled", "b.service": "disabled", "c.service": "masked"}
    systemd.argvs.clear()
    assert restore_unit_state(systemd.transport, "a.service", "enabled", timeout=5) is None   # idempotent
    assert [a[1] for a in systemd.argvs] == ["is-enabled"]
