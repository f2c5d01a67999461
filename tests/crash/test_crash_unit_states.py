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

from pathlib import Path

import pytest

from tests.crash import harness
from tests.crash.unit_scenario import UnitScenario, apply_in_child, check_after_recovery, count_points

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
