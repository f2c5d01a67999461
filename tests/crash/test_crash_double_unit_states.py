"""A crash during recovery (a double crash) of unit-file state operations: the apply killed once,
just after systemctl changed the unit-file state (or inside the rollback of a failed validation), then
the recovery after it killed at each of its journal, agent and fake-systemctl points (see
:func:`tests.crash.harness.double_crash`), then recovery to the end. The checks of
:mod:`tests.crash.test_crash_unit_states` hold: config byte for byte, unit-file state and active
state exactly the prior ones.
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


#: As for packages: the journal-step kills of the recovery run in ``make test-nightly`` only.
@pytest.mark.parametrize("second", [pytest.param("journal-before", marks=pytest.mark.nightly),
                                    pytest.param("journal-after", marks=pytest.mark.nightly),
                                    "agent", "systemctl"])
@pytest.mark.parametrize("kind", list(FIRST_KILL))
def test_a_recovery_killed_at_every_point_of_restoring_unit_states_recovers_to_old(
    tmp_path: Path, kind: str, second: str
) -> None:
    scenario = unit_scenario.UnitScenario(tmp_path, kind)
    state = tmp_path / "systemd" / "state.json"
    endings = harness.double_crash_of(unit_scenario, scenario, state, tmp_path,
                                      first=FIRST_KILL[kind], second=second)
    assert set(endings) == {"rolled_back"}, endings
