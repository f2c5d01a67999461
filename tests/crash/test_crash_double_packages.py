"""A crash during recovery (a double crash) of package operations: the apply killed once inside the
fake dpkg run (``dpkg -i`` cut after the binary is unpacked, also in a failed apply's rollback;
``dpkg --configure`` half-configured), then the recovery after it killed at each of its journal, agent
and fake-dpkg points (settling dpkg again, removing our policy-rc.d and the upload, restoring files;
see :func:`tests.crash.harness.double_crash`), then recovery to the end. The checks of
:mod:`tests.crash.test_crash_packages` hold: files exact, dpkg not left interrupted, our policy-rc.d
and the uploaded ``.deb`` gone.

One first kill per scenario keeps the cases bounded; every point of the apply is covered by the
single-crash file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.apply import pkg_ops
from tests.crash import harness, pkg_scenario

#: Where the apply dies first: (mode, a crash point's description, which match), per scenario kind.
FIRST_KILL = {
    # dpkg -i cut short: app half-installed, its binary new, its library not yet back; policy-rc.d held.
    "deb_install": ("dpkg", r"^dpkg app unpacked .*/usr/bin/app$", 1),
    # The same inside the rollback's reinstall after the postinst failed (the second dpkg -i).
    "failing": ("dpkg", r"^dpkg app unpacked .*/usr/bin/app$", 2),
    # dpkg --configure cut short: other half-configured, our policy-rc.d in place.
    "dpkg_configure": ("dpkg", r"^dpkg other half-configured$", 1),
}
#: "failing" adds to "deb_install" only what its recovery does with dpkg (its journal steps and file
#: restore are the same): the file stays under ~90 s.
SECOND_KILLS = ("journal-before", "journal-after", "agent", "dpkg")
#: ``make test`` kills the recovery where it settles dpkg and where the agent restores files; the kills
#: around its journal steps (the same journal code the single-crash files cover at every step) run in
#: ``make test-nightly``, which keeps this file's share of ``make test`` near 40 s.
CASES = [pytest.param(kind, second, marks=(pytest.mark.nightly,) if second.startswith("journal") else ())
         for kind in FIRST_KILL for second in SECOND_KILLS if kind != "failing" or second == "dpkg"]


@pytest.mark.parametrize(("kind", "second"), CASES)
def test_a_recovery_killed_at_every_point_of_settling_packages_recovers_to_old(
    tmp_path: Path, kind: str, second: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pkg_ops, "LOCK_WAIT_S", 0.0)   # the last recovery runs in this process
    scenario = pkg_scenario.PackageScenario(tmp_path, kind)
    state = tmp_path / "dpkg" / "state.json"
    endings = harness.double_crash_of(pkg_scenario, scenario, state, tmp_path,
                                      first=FIRST_KILL[kind], second=second)
    assert set(endings) == {"rolled_back"}, endings
