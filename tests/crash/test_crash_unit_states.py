"""Crash safety of the ``unit_state`` operation: a hard kill before and after every journal step and
before every systemctl command (and after each one that changed a unit), then recovery as at the next
start.

systemctl does NOT run on this host: every systemctl command is answered at the transport boundary by
a small fake systemd whose state is a JSON file in the test's temporary directory
(:mod:`tests.crash.disk_systemctl`); any command it does not model is refused and fails the test. The
unit's config file, the agent, the backup and the state store are real, under ``tmp_path``.

The package writes the unit's config, runs ``daemon-reload``, changes the unit-file state (``unmask``
of a masked unit, or ``enable`` of a disabled one) and restarts the unit. After recovery the transaction
is final and the target is all new (committed: config new, unit unmasked/enabled and running the new
config) or all old (config byte for byte and mode as the backup recorded it, unit exactly as before:
masked stays masked, disabled stays disabled, and an active unit runs the old config, an inactive one
is stopped); the backup matches its hashes and records the prior ``is-enabled`` answer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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


def check_after_recovery(scenario: UnitScenario, work: Path, state: Path, label: str) -> str:
    errors = harness.recover(work, lambda: FakeSystemctlLocal(state, counter=str(work / "recovery.systemctl"),
                                                      agent_counter=str(work / "recovery.agent")))
    assert errors == [], f"{label}: recovery errors {errors}"
    assert_nothing_refused(state, label)
    _, txn = harness.recovered_transaction(work, label)
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


#: (kind, mode) -> how the runs may end: early kills abort, later ones roll back, the last commit.
ENDINGS = {
    ("unmask", "journal-before"): {"aborted", "rolled_back", "committed"},
    ("unmask", "journal-after"): {"aborted", "rolled_back", "committed"},
    ("unmask", "systemctl"): {"aborted", "rolled_back"},
    ("enable", "journal-before"): {"aborted", "rolled_back", "committed"},
    ("enable", "journal-after"): {"aborted", "rolled_back", "committed"},
    ("enable", "systemctl"): {"aborted", "rolled_back"},
    # Killed before ``rolling_back`` is journalled, the last durable step is ``applied``: recovery does
    # not know the verdict and verifies with the recorded plan (empty here), which passes -> committed.
    ("failing", "journal-before"): {"aborted", "rolled_back", "committed"},
    ("failing", "systemctl"): {"aborted", "rolled_back"},
}


@pytest.mark.parametrize(("kind", "mode"), list(ENDINGS))
def test_hard_kill_at_every_unit_state_step_recovers_to_old_or_new(
    tmp_path: Path, kind: str, mode: str
) -> None:
    scenario = UnitScenario(tmp_path, kind)
    state = tmp_path / "systemd" / "state.json"
    points = count_points(scenario, tmp_path / "count", state, mode)
    assert points >= 5, f"suspiciously few crash points: {points}"

    def kill(work: Path, crash_at: int) -> int:
        scenario.reset(state)
        return apply_in_child(scenario, work, state, mode, crash_at)

    endings = harness.kill_at_every_point(tmp_path, f"{kind} {mode}", points, kill,
                                          lambda work, label: check_after_recovery(scenario, work, state,
                                                                                   label))
    assert set(endings) == ENDINGS[kind, mode], endings
