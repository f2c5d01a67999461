"""The package scenario of the crash tests (see :mod:`tests.crash.test_crash_packages` for what is
checked and why): the target, the fix package, one apply or recovery in a child process against the fake
dpkg of :mod:`.disk_dpkg`, and the all-old-or-all-new checks after recovery."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.fixpkg import DebInstallOp, DpkgConfigureOp, FixPackage
from orchestrator.fixpkg.ops import Operation, WriteFileOp
from tests.crash import harness
from tests.crash.disk_dpkg import DiskDpkg, FakeDpkgLocal
from tests.crash.harness import GID, UID, sha
from tests.unit.fake_dpkg import FakePackage

#: path -> (content, mode); None: absent.
Files = dict[str, tuple[bytes, int] | None]


class PackageScenario:
    """The ``app`` package (1.0-1, amd64, installed-ok) with a truncated binary, a deleted library, an
    edited conffile and an intact file; ``other`` (2.0, all) left half-configured; ``extra.conf``, no
    package's, changed by a plain write.

    ``deb_install``: write extra.conf, then reinstall app (paths come before packages in a fix).
    ``failing``: the same, but the reinstall's postinst fails once, so the apply rolls back and its
    rollback reinstalls again (the kills land in that rollback). ``dpkg_configure``: write extra.conf,
    then configure other."""

    def __init__(self, base: Path, kind: str) -> None:
        self.kind = kind
        self.root = base / "root"
        r = str(self.root)
        self.bin, self.lib = f"{r}/usr/bin/app", f"{r}/usr/lib/app/core.so"
        self.conf, self.doc = f"{r}/etc/app/app.conf", f"{r}/usr/share/app/README"
        self.extra = f"{r}/etc/extra.conf"
        pristine = {self.bin: b"\x7fELF app 1.0\n", self.lib: b"\x7fELF core\n", self.conf: b"workers 4\n",
                    self.doc: b"read me\n"}
        self.app = FakePackage("app", "1.0-1", "amd64", "ii ", pristine, frozenset({self.conf}))
        self.other = FakePackage("other", "2.0", "all", "iF ", {f"{r}/usr/share/other/data": b"other\n"})
        extra_old, extra_new = b"extra = 0\n", b"extra = 1\n"
        self.before: Files = {self.bin: (b"", 0o755), self.lib: None,
                              self.conf: (b"workers 8  # local\n", 0o644),
                              self.doc: (pristine[self.doc], 0o644), self.extra: (extra_old, 0o644),
                              f"{r}/usr/share/other/data": (b"other\n", 0o644)}
        self.before_status = {"app": "ii ", "other": "iF "}
        write = WriteFileOp(self.extra, sha(extra_new), len(extra_new), 0o644, UID, GID, sha(extra_old))
        ops: tuple[Operation, ...]
        if kind == "dpkg_configure":
            ops = (write, DpkgConfigureOp("other"))
            self.after: Files = {**self.before, self.extra: (extra_new, 0o644)}
            self.after_status = {"app": "ii ", "other": "ii "}
            blobs = {sha(extra_new): extra_new}
        else:
            ops = (write, DebInstallOp("app", "1.0-1", "amd64", self.app.deb_sha256, len(self.app.deb)))
            self.after = {**self.before, self.bin: (pristine[self.bin], 0o755),
                          self.lib: (pristine[self.lib], 0o644), self.extra: (extra_new, 0o644)}
            self.after_status = dict(self.before_status)
            blobs = {sha(extra_new): extra_new, self.app.deb_sha256: self.app.deb}
        self.package = FixPackage(
            id=f"crash-{kind}-pkg", created_at="2026-12-10T00:00:00+00:00", operations=ops, blobs=blobs,
            issue={}, diagnosis={}, validation={}, reboot_required=False, allowed_roots=(r,))
        #: The outcome of the uninterrupted apply.
        self.is_committing = kind != "failing"

    def reset(self, state: Path) -> None:
        if self.root.exists():
            subprocess.run(["rm", "-rf", "--", str(self.root)], check=True)
        for path, version in self.before.items():
            if version is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(version[0])
                Path(path).chmod(version[1])
        DiskDpkg.create(state, [self.app, self.other], install_failures=1 if self.kind == "failing" else 0)

    def observed(self) -> Files:
        return {path: harness.own_file(path) for path in self.before}

    def leftovers(self) -> list[str]:
        """Temp files (the agent's replace, dpkg's .dpkg-new) must not stay beside the real files."""
        return sorted(p.name for p in self.root.rglob("*") if p.is_file() and str(p) not in self.before)


def apply_in_child(scenario: PackageScenario, work: Path, state: Path, mode: str, crash_at: int) -> int:
    spec = harness.apply_spec(scenario.package, work, mode, crash_at, dpkg_state=str(state))
    return harness.run_child("pkg_child", spec)


def count_points(scenario: PackageScenario, work: Path, state: Path, mode: str) -> int:
    scenario.reset(state)
    code = apply_in_child(scenario, work, state, mode, 0)
    assert code == (0 if scenario.is_committing else 1), "the uninterrupted apply ended otherwise"
    expected = scenario.after if scenario.is_committing else scenario.before
    assert scenario.observed() == expected
    return harness.points_of(work / "counter", mode, {"agent": ".agent", "dpkg": ".dpkg"})



def recover_in_child(work: Path, state: Path, mode: str, crash_at: int) -> int:
    """Recovery of ``work``'s transaction in a child that dies at the ``crash_at``-th point of ``mode``
    (0: never)."""
    return harness.run_child("pkg_child", harness.recover_spec(work, mode, crash_at, dpkg_state=str(state)))


def check_after_recovery(scenario: PackageScenario, work: Path, state: Path, label: str, *,
                         is_audited: bool = True) -> str:
    errors = harness.recover(work, lambda: FakeDpkgLocal(state, counter=str(work / "recovery.dpkg"),
                                                 agent_counter=str(work / "recovery.agent")))
    assert errors == [], f"{label}: recovery errors {errors}"
    store, txn = harness.recovered_transaction(work, label, is_audited=is_audited)
    steps = store.steps(txn.id)
    dpkg = DiskDpkg(state)
    status = {p.name: p.status for p in dpkg.packages}
    files = scenario.observed()
    if txn.state == "committed":
        assert files == scenario.after, f"{label}: committed but files are {files}"
        assert status == scenario.after_status, f"{label}: committed but dpkg has {status}"
    else:
        assert files == scenario.before, f"{label}: {txn.state} but files are {files}"
        assert status["app"] == scenario.before_status["app"], f"{label}: {txn.state}, app is {status['app']}"
        # pkg_ops.py: "dpkg_configure cannot be undone ... a rollback leaves the configuration as it is".
        started = any(s["step"] == "op_started" and s["detail"].get("op") == "dpkg_configure" for s in steps)
        done = any(s["step"] == "op_done" and s["detail"].get("index") == 1 for s in steps)
        if scenario.kind == "dpkg_configure" and done:
            assert status["other"] == "ii ", f"{label}: the configure ran, yet other is {status['other']}"
        elif not started:
            assert status["other"] == "iF ", f"{label}: nothing configured other, yet it is {status['other']}"
        else:
            assert status["other"] in ("iF ", "ii "), f"{label}: other is {status['other']}"
    interrupted = [name for name in dpkg.audit() if status[name] != scenario.before_status[name]]
    assert interrupted == [], f"{label}: dpkg left interrupted for {interrupted}: {status}"
    assert not dpkg.policy_rc.exists(), f"{label}: our policy-rc.d was left behind"
    uploads = sorted(p.name for p in (work / "agent").glob("deb-*"))
    assert uploads == [], f"{label}: uploaded .deb left in the agent's directory: {uploads}"
    assert scenario.leftovers() == [], f"{label}: leftover files {scenario.leftovers()}"
    harness.checked_backup(work)      # the .deb included
    return txn.state
