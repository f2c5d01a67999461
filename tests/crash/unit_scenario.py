"""The unit-state scenario of the crash tests (see :mod:`tests.crash.test_crash_unit_states` for what
is checked and why): the target, the fix package, one apply or recovery in a child process against the
fake systemctl of :mod:`.disk_systemctl`, and the all-old-or-all-new checks after recovery."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.fixpkg import FixPackage
from orchestrator.fixpkg.ops import DaemonReloadOp, UnitOp, UnitStateOp, WriteFileOp
from tests.crash import harness
from tests.crash.disk_systemctl import DiskSystemctl, FakeSystemctlLocal, FakeUnit
from tests.crash.harness import GID, UID, sha

UNIT = "app.service"


class UnitScenario:
    """``app.service`` reads ``etc/app/app.conf`` under the scratch root.

    ``unmask``: the unit is masked (disabled under the mask) and inactive; the package writes the config,
    reloads, unmasks the unit and restarts it. ``enable``: the unit is disabled but running the old config
    (started by hand); the package enables it. ``failing``: ``unmask``, but validation fails, so the apply
    rolls back (the kills land in that rollback too)."""

    def __init__(self, base: Path, kind: str) -> None:
        self.kind = kind
        self.root = base / "root"
        self.conf = f"{self.root}/etc/app/app.conf"
        self.old, self.new = b"workers 4\n", b"workers 8\n"
        if kind == "enable":
            self.unit_before = FakeUnit(enabled=False, masked=False, active="active", config=self.conf,
                                        running=sha(self.old))
            state_op = UnitStateOp(UNIT, "enabled", "disabled")
            self.unit_after = FakeUnit(enabled=True, masked=False, active="active", config=self.conf,
                                       running=sha(self.new))
        else:
            self.unit_before = FakeUnit(enabled=False, masked=True, active="inactive", config=self.conf)
            state_op = UnitStateOp(UNIT, "unmasked", "masked")
            self.unit_after = FakeUnit(enabled=False, masked=False, active="active", config=self.conf,
                                       running=sha(self.new))
        write = WriteFileOp(self.conf, sha(self.new), len(self.new), 0o644, UID, GID, sha(self.old))
        self.package = FixPackage(
            id=f"crash-unit-{kind}", created_at="2026-12-10T00:00:00+00:00",
            operations=(write, DaemonReloadOp(), state_op, UnitOp(UNIT, "restart")),
            blobs={sha(self.new): self.new}, issue={}, diagnosis={}, validation={}, reboot_required=False,
            allowed_roots=(str(self.root),))
        #: The outcome of the uninterrupted apply.
        self.is_committing = kind != "failing"

    def reset(self, state: Path) -> None:
        if self.root.exists():
            subprocess.run(["rm", "-rf", "--", str(self.root)], check=True)
        Path(self.conf).parent.mkdir(parents=True)
        Path(self.conf).write_bytes(self.old)
        Path(self.conf).chmod(0o644)
        DiskSystemctl.create(state, {UNIT: self.unit_before})

    def seen(self, state: Path) -> tuple[tuple[bytes, int] | None, FakeUnit]:
        """The config (content, mode; None: absent) and the unit as the fake systemd has it."""
        return harness.own_file(self.conf), DiskSystemctl(state).units[UNIT]

    @property
    def before(self) -> tuple[tuple[bytes, int], FakeUnit]:
        return (self.old, 0o644), self.unit_before

    @property
    def after(self) -> tuple[tuple[bytes, int], FakeUnit]:
        return (self.new, 0o644), self.unit_after

    def leftovers(self) -> list[str]:
        """The agent's temp files must not stay beside the config."""
        return sorted(p.name for p in self.root.rglob("*") if p.is_file() and str(p) != self.conf)


def apply_in_child(scenario: UnitScenario, work: Path, state: Path, mode: str, crash_at: int) -> int:
    spec = harness.apply_spec(scenario.package, work, mode, crash_at, systemctl_state=str(state),
                      validates=scenario.is_committing)
    return harness.run_child("unit_child", spec)


def assert_nothing_refused(state: Path, label: str) -> None:
    refused = DiskSystemctl(state).refused
    assert not refused.exists(), f"{label}: commands refused: {refused.read_text()}"


def count_points(scenario: UnitScenario, work: Path, state: Path, mode: str) -> int:
    scenario.reset(state)
    code = apply_in_child(scenario, work, state, mode, 0)
    assert_nothing_refused(state, "uninterrupted apply")
    assert code == (0 if scenario.is_committing else 1), "the uninterrupted apply ended otherwise"
    expected = scenario.after if scenario.is_committing else scenario.before
    assert scenario.seen(state) == expected
    return harness.points_of(work / "counter", mode, {"agent": ".agent", "systemctl": ".systemctl"})



def recover_in_child(work: Path, state: Path, mode: str, crash_at: int) -> int:
    """Recovery of ``work``'s transaction in a child that dies at the ``crash_at``-th point of ``mode``
    (0: never)."""
    spec = harness.recover_spec(work, mode, crash_at, systemctl_state=str(state))
    return harness.run_child("unit_child", spec)


def check_after_recovery(scenario: UnitScenario, work: Path, state: Path, label: str, *,
                         is_audited: bool = True) -> str:
    errors = harness.recover(work, lambda: FakeSystemctlLocal(state, counter=str(work / "recovery.systemctl"),
                                                      agent_counter=str(work / "recovery.agent")))
    assert errors == [], f"{label}: recovery errors {errors}"
    assert_nothing_refused(state, label)
    _, txn = harness.recovered_transaction(work, label, is_audited=is_audited)
    seen = scenario.seen(state)
    if txn.state == "committed":
        assert seen == scenario.after, f"{label}: committed but the target is {seen}"
    else:
        assert seen == scenario.before, f"{label}: {txn.state} but the target is {seen}"
    assert scenario.leftovers() == [], f"{label}: leftover files {scenario.leftovers()}"
    if (backup := harness.checked_backup(work)) is not None:
        assert backup.unit_states == {UNIT: scenario.unit_before.file_state}, f"{label}: {backup.unit_states}"
        assert backup.units == {UNIT: scenario.unit_before.active}, f"{label}: {backup.units}"
    return txn.state
