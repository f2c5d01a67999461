"""Crash safety of the package operations (``deb_install``, ``dpkg_configure``): a hard kill before and
after every journal step and at every package step (the preconditions' and the backup's queries, the
upload of the ``.deb``, its sha256 check, holding services, each step inside the dpkg run, the version
check, releasing services, removing the upload), then recovery as at the next start.

dpkg does NOT run on this host: every package command (``dpkg``, ``dpkg-query``, the policy-rc.d
``sh -c`` commands, ``sha256sum`` of the upload) is answered at the transport boundary by a small fake
dpkg whose state is a JSON file in the test's temporary directory (:mod:`tests.crash.disk_dpkg`, the
model of :mod:`tests.unit.fake_dpkg` over real files), and its ``/usr/sbin/policy-rc.d`` is a file
there too. The package's files, the agent, the backup and the state store are real, under ``tmp_path``.
A kill inside the fake dpkg run is dpkg dying at that point (as with a power cut): the package is left
half-installed, unpacked or half-configured with some of its files new.

After recovery, the transaction is final and the target is all new (committed: the package installed-ok
at its version, every changed or missing file of it back as packaged, the modified conffile kept, the
plain file operation done) or all old (every file byte for byte and mode as the backup recorded it, the
file operation undone, the package installed-ok at the same version as before), with the documented
exception of pkg_ops.py: a ``dpkg_configure`` that ran is not undone. In every case dpkg is not left
interrupted (``dpkg --audit`` reports only what it reported before the apply), our policy-rc.d is gone,
the uploaded ``.deb`` is not left in the agent's directory, and no temp file is left beside the files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.apply import pkg_ops
from tests.crash import harness
from tests.crash.pkg_scenario import PackageScenario, apply_in_child, check_after_recovery, count_points


@pytest.fixture(autouse=True)
def _no_lock_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(pkg_ops, "LOCK_WAIT_S", 0.0)   # recovery runs in this process
    yield


#: (kind, mode) -> how the runs may end: early kills abort, later ones roll back, the last commit.
ENDINGS = {
    ("deb_install", "journal-before"): {"aborted", "rolled_back", "committed"},
    ("deb_install", "journal-after"): {"aborted", "rolled_back", "committed"},
    ("deb_install", "dpkg"): {"aborted", "rolled_back"},
    ("failing", "journal-before"): {"aborted", "rolled_back"},
    ("failing", "dpkg"): {"aborted", "rolled_back"},
    ("failing", "agent"): {"rolled_back"},
    ("dpkg_configure", "journal-before"): {"aborted", "rolled_back", "committed"},
    ("dpkg_configure", "journal-after"): {"aborted", "rolled_back", "committed"},
    ("dpkg_configure", "dpkg"): {"aborted", "rolled_back"},
}


@pytest.mark.parametrize(("kind", "mode"), list(ENDINGS))
def test_hard_kill_at_every_package_step_recovers_to_old_or_new(
    tmp_path: Path, kind: str, mode: str
) -> None:
    scenario = PackageScenario(tmp_path, kind)
    state = tmp_path / "dpkg" / "state.json"
    points = count_points(scenario, tmp_path / "count", state, mode)
    assert points >= 3, f"suspiciously few crash points: {points}"

    def kill(work: Path, crash_at: int) -> int:
        scenario.reset(state)
        return apply_in_child(scenario, work, state, mode, crash_at)

    endings = harness.kill_at_every_point(tmp_path, f"{kind} {mode}", points, kill,
                                          lambda work, label: check_after_recovery(scenario, work, state,
                                                                                   label))
    assert set(endings) == ENDINGS[kind, mode], endings
