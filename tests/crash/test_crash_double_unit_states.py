"""A crash during recovery (a double crash) of unit-file state operations.

The apply is killed at one representative point of each scenario (inside the fake dpkg run, or just
after the unit-file state changed), then the recovery that follows is itself killed at every one of its
own crash points: before and after each journal step, each crash-relevant system call inside the agent
(the file restore), and each fake dpkg or systemctl crash point (settling dpkg again, removing our
policy-rc.d and the upload, putting unit-file states back). Then recovery runs to the end as at the
next start, and the checks of :mod:`tests.crash.test_crash_packages` and
:mod:`tests.crash.test_crash_unit_states` hold: the target all old, dpkg not left interrupted, our
policy-rc.d gone, the uploaded ``.deb`` gone, unit-file states exactly the prior ones, files exact.

One first kill per scenario keeps the cases bounded (every point of the apply is covered once by the
single-crash files); the second kill covers every point of the recovery.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash import harness, unit_scenario

#: Where the apply dies first: (mode, a crash point's description, which match), per scenario kind.
FIRST_KILL = {
    # The state changed and is durable, but the apply has not seen systemctl's answer.
    "unmask": ("systemctl", r"^after \S+ unmask -- app\.service$", 1),
    "enable": ("systemctl", r"^after \S+ enable -- app\.service$", 1),
    # Inside the rollback after a failed validation: the unit masked again, the config still new.
    "failing": ("systemctl", r"^after \S+ mask -- app\.service$", 1),
}


@pytest.mark.parametrize("second", ["journal-before", "journal-after", "agent", "systemctl"])
@pytest.mark.parametrize("kind", list(FIRST_KILL))
def test_a_recovery_killed_at_every_point_of_restoring_unit_states_recovers_to_old(
    tmp_path: Path, kind: str, second: str
) -> None:
    scenario = unit_scenario.UnitScenario(tmp_path, kind)
    state = tmp_path / "systemd" / "state.json"
    endings = harness.double_crash(
        tmp_path, f"{kind} then recovery {second}", FIRST_KILL[kind], second,
        apply=lambda work, mode, at: unit_scenario.apply_in_child(scenario, work, state, mode, at),
        recover=lambda work, mode, at: unit_scenario.recover_in_child(work, state, mode, at),
        reset=lambda: scenario.reset(state),
        check=lambda work, label, audited: unit_scenario.check_after_recovery(
            scenario, work, state, label, is_audited=audited))
    assert set(endings) == {"rolled_back"}, endings
