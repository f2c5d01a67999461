"""Crash safety of fix application: a hard kill at every journal step and at every crash-relevant
system call inside the agent's file replacement, then recovery as at the next start.

After recovery every affected file is byte-for-byte either all old or all new (with its mode and
owner), never torn, empty or missing; the backup matches its recorded hashes; the state store parses;
and the transaction ended in a final state consistent with the files.

A killed process leaves the page cache intact, so this proves the *ordering* of the protocol (intent
before the act, temp → fsync → rename → fsync dir); a true power cut would also need a block-level fault
injector (dm-log-writes, LazyFS), which this machine does not have.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.fixpkg import FixPackage
from orchestrator.fixpkg.fsops import MakeDirOp, RemoveDirOp, RemoveSymlinkOp, SetOwnerModeOp, SymlinkOp
from orchestrator.fixpkg.ops import ABSENT, Operation, RemoveFileOp, SetMetaOp, WriteFileOp
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from orchestrator.transport.local import LocalTransport
from tests.crash import harness
from tests.crash.harness import GID, UID, sha


@dataclass(frozen=True)
class Version:
    data: bytes | None   # None: absent
    mode: int = 0


class Scenario:
    """Four files under a scratch root and the package that changes them in four ways."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root" / "etc" / "app"
        self.conf, self.new = str(self.root / "app.conf"), str(self.root / "conf.d" / "new.conf")
        self.old, self.key = str(self.root / "old.conf"), str(self.root / "key")
        conf_old, conf_new = b"listen 80\nworkers 0\n" * 50, b"listen 80\nworkers 4\n" * 60
        new_data, old_data, key_data = b"extra = 1\n", b"obsolete = yes\n", b"secret\n"
        self.before = {self.conf: Version(conf_old, 0o644), self.new: Version(None),
                       self.old: Version(old_data, 0o644), self.key: Version(key_data, 0o640)}
        self.after = {self.conf: Version(conf_new, 0o644), self.new: Version(new_data, 0o640),
                      self.old: Version(None), self.key: Version(key_data, 0o600)}
        ops = (
            WriteFileOp(self.conf, sha(conf_new), len(conf_new), 0o644, UID, GID, sha(conf_old)),
            WriteFileOp(self.new, sha(new_data), len(new_data), 0o640, UID, GID, ABSENT),
            RemoveFileOp(self.old, sha(old_data)),
            SetMetaOp(self.key, 0o600, UID, GID, sha(key_data)),
        )
        self.package = FixPackage(
            id="crash-test-pkg", created_at="2026-11-21T00:00:00+00:00", operations=ops,
            blobs={sha(conf_new): conf_new, sha(new_data): new_data}, issue={}, diagnosis={},
            validation={}, reboot_required=False, allowed_roots=(str(base / "root"),))

    def reset(self) -> None:
        (self.root / "conf.d").mkdir(parents=True, exist_ok=True)
        for path, version in self.before.items():
            p = Path(path)
            if version.data is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(version.data)
                p.chmod(version.mode)

    def observed(self) -> dict[str, Version]:
        seen = {}
        for path in self.before:
            found = harness.own_file(path)
            seen[path] = Version(None) if found is None else Version(*found)
        return seen

    def leftovers(self) -> list[str]:
        """Temp files of an interrupted replace must not stay next to the real files."""
        return sorted(p.name for p in self.root.rglob("*")
                      if (p.is_file() or p.is_symlink()) and str(p) not in self.before)


#: How a path looks to lstat: (kind, content or link text, mode); None when absent.
Node = tuple[str, bytes | str | None, int] | None


class NodeScenario:
    """Every node operation at once: a new directory tree with a file and a dangling symlink in it, a
    retargeted symlink, a removed symlink, a removed directory (after the file in it), and mode
    changes of a file (no rewrite), a directory and (owner only) a symlink."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root" / "etc" / "app"
        r = str(self.root)
        key, conf, old = b"secret\n", b"new = 1\n", b"old\n"
        self.before: dict[str, Node] = {
            f"{r}/new.d": None, f"{r}/new.d/sub": None, f"{r}/new.d/sub/a.conf": None,
            f"{r}/new.d/link": None,
            f"{r}/current": ("symlink", "v1", 0o777), f"{r}/stale": ("symlink", "/nowhere", 0o777),
            f"{r}/key": ("file", key, 0o644), f"{r}/conf.d": ("dir", None, 0o755),
            f"{r}/gone.d": ("dir", None, 0o750), f"{r}/gone.d/old.conf": ("file", old, 0o644),
        }
        self.after: dict[str, Node] = {
            **self.before, f"{r}/new.d": ("dir", None, 0o2750), f"{r}/new.d/sub": ("dir", None, 0o700),
            f"{r}/new.d/sub/a.conf": ("file", conf, 0o640),
            f"{r}/new.d/link": ("symlink", "../missing", 0o777),
            f"{r}/current": ("symlink", "v2", 0o777), f"{r}/stale": None, f"{r}/key": ("file", key, 0o600),
            f"{r}/conf.d": ("dir", None, 0o700), f"{r}/gone.d": None, f"{r}/gone.d/old.conf": None,
        }
        ops: tuple[Operation, ...] = (
            MakeDirOp(f"{r}/new.d", 0o2750, UID, GID), MakeDirOp(f"{r}/new.d/sub", 0o700, UID, GID),
            SymlinkOp(f"{r}/current", "v2", UID, GID, expect_target="v1"),
            SetOwnerModeOp(f"{r}/conf.d", "dir", 0o700, UID, GID, 0o755, UID, GID, None, None),
            SetOwnerModeOp(f"{r}/key", "file", 0o600, UID, GID, 0o644, UID, GID, sha(key), None),
            SymlinkOp(f"{r}/new.d/link", "../missing", UID, GID, expect_target=None),
            WriteFileOp(f"{r}/new.d/sub/a.conf", sha(conf), len(conf), 0o640, UID, GID, ABSENT),
            RemoveSymlinkOp(f"{r}/stale", "/nowhere"),
            RemoveFileOp(f"{r}/gone.d/old.conf", sha(old)), RemoveDirOp(f"{r}/gone.d"),
        )
        self.package = FixPackage(
            id="crash-nodes-pkg", created_at="2026-12-06T00:00:00+00:00", operations=ops,
            blobs={sha(conf): conf}, issue={}, diagnosis={}, validation={}, reboot_required=False,
            allowed_roots=(str(base / "root"),))

    def reset(self) -> None:
        if self.root.exists():
            subprocess.run(["rm", "-rf", "--", str(self.root)], check=True)
        self.root.mkdir(parents=True)
        for path, node in sorted(self.before.items()):
            if node is None:
                continue
            kind, data, mode = node
            p = Path(path)
            if kind == "dir":
                p.mkdir()
                p.chmod(mode)
            elif kind == "symlink":
                p.symlink_to(str(data))
            else:
                assert isinstance(data, bytes)
                p.write_bytes(data)
                p.chmod(mode)

    def observed(self) -> dict[str, Node]:
        seen: dict[str, Node] = {}
        for path in self.before:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                seen[path] = None
                continue
            assert (st.st_uid, st.st_gid) == (UID, GID), f"{path} changed owner"
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                seen[path] = ("symlink", str(Path(path).readlink()), mode)
            elif stat.S_ISDIR(st.st_mode):
                seen[path] = ("dir", None, mode)
            else:
                seen[path] = ("file", Path(path).read_bytes(), mode)
        return seen

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.root.rglob("*") if str(p) not in self.before)


def count_points(scenario: Scenario | NodeScenario, work: Path, mode: str) -> int:
    scenario.reset()
    code = harness.run_child("child", harness.apply_spec(scenario.package, work, mode, 0))
    assert code == 0, "the uninterrupted apply must succeed"
    assert scenario.observed() == scenario.after
    return harness.points_of(work / "counter", mode, {"agent": ".agent"})


def check_after_recovery(scenario: Scenario | NodeScenario, work: Path, label: str) -> str:
    errors = harness.recover(work, LocalTransport)
    assert errors == [], f"{label}: recovery errors {errors}"
    _, txn = harness.recovered_transaction(work, label)
    seen = scenario.observed()
    expected = scenario.after if txn.state == "committed" else scenario.before
    assert seen == expected, f"{label}: {txn.state} but files are {seen}"
    assert scenario.leftovers() == [], f"{label}: leftover files {scenario.leftovers()}"
    harness.checked_backup(work)
    return txn.state


@pytest.mark.parametrize("kind", ["files", "nodes"])
@pytest.mark.parametrize("mode", ["journal-before", "journal-after", "agent"])
def test_hard_kill_at_every_step_recovers_to_old_or_new(tmp_path: Path, mode: str, kind: str) -> None:
    scenario = Scenario(tmp_path) if kind == "files" else NodeScenario(tmp_path)
    points = count_points(scenario, tmp_path / "count", mode)
    assert points >= (8 if mode == "agent" else 10), f"suspiciously few crash points: {points}"

    def kill(work: Path, crash_at: int) -> int:
        scenario.reset()
        return harness.run_child("child", harness.apply_spec(scenario.package, work, mode, crash_at))

    endings = harness.kill_at_every_point(tmp_path, f"{kind} {mode}", points, kill,
                                          lambda work, label: check_after_recovery(scenario, work, label))
    # Early crashes abort or roll back, the last ones commit: both outcomes must have been exercised.
    assert set(endings) >= {"rolled_back"}, endings
    if mode != "agent":
        assert "aborted" in endings and "committed" in endings, endings


def _tiny_tmpfs(path: Path) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a 64 KiB tmpfs as a full disk")
def test_disk_full_while_writing_the_backup_aborts_before_the_target_is_touched(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path)
    scenario.reset()
    # A config file larger than the whole backup filesystem: the backup cannot be written.
    big = b"x = 1\n" * 40_000
    Path(scenario.conf).write_bytes(big)
    conf_new = b"x = 2\n"
    package = FixPackage(
        id="full-disk-pkg", created_at="2026-11-21T00:00:00+00:00",
        operations=(WriteFileOp(scenario.conf, sha(conf_new), len(conf_new), 0o644, UID, GID, sha(big)),),
        blobs={sha(conf_new): conf_new}, issue={}, diagnosis={}, validation={}, reboot_required=False,
        allowed_roots=(str(tmp_path / "root"),))
    small = tmp_path / "small"
    _tiny_tmpfs(small)
    try:
        from orchestrator.apply import apply_package
        from orchestrator.apply.journal import Journal

        store = TransactionStore(open_state(tmp_path / "state.db"))
        txn = store.create(package_id=package.id, package_dir="/pkg", target="local", component="app",
                           backup_dir=str(small / "backup"), ops_total=1)
        transport = LocalTransport()
        result = apply_package(package, RemoteAgent(transport, remote_dir=str(tmp_path / "agent")), transport,
                               backup_dir=small / "backup", journal=Journal(store, txn, package.operations),
                               validate=lambda: True)
        assert result.status == "aborted"
        assert "No space left on device" in result.errors[0], result.errors
        assert Path(scenario.conf).read_bytes() == big          # untouched
        assert store.get(txn.id).state == "aborted"
    finally:
        subprocess.run(["umount", str(small)], check=True)
