"""A run killed while its troubleshooting VM is up, on real VMs: `vmrepair run` is SIGKILLed once its
troubleshooting VM runs; the next start of a mutating command closes the dead run as `interrupted`
(with the stage it died in) and destroys its VM, so no domain is left; the next run on that target
records which run it resumed from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.cli.main import main
from orchestrator.demo.faults import inject
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from tests.integration.helpers import booted_patient, fresh_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
#: From `vmrepair run` starting to its troubleshooting VM being defined (detection, capture, start).
VM_DEADLINE_S = 240


@pytest.fixture(scope="module")
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "respatient", HEALTHY)


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(app, patient, HEALTHY)


def _troubleshooting_vms(app: App) -> list[str]:
    return [vm.name for vm in app.vms.list() if vm.name.startswith(("trb-", "lyr-"))]


def _killed_run(app: App, target: str, log: Path) -> int:
    """Start `vmrepair run`, SIGKILL it once its troubleshooting VM exists; its pid."""
    with log.open("wb") as out:
        run = subprocess.Popen([str(Path(sys.executable).with_name("vmrepair")), "run", "--target", target,
                                "--yes"], stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + VM_DEADLINE_S
            while not _troubleshooting_vms(app):
                assert run.poll() is None, f"the run ended before its VM started:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        finally:
            os.kill(run.pid, signal.SIGKILL)
            run.wait(30)
    return run.pid


def _session_of(app: App, target: str, status: str) -> dict[str, object]:
    found = []
    for meta_path in app.settings.sessions_dir.glob("*/session.json"):
        meta = json.loads(meta_path.read_text())
        if meta.get("target") == target and meta.get("status") == status:
            found.append(meta)
    assert len(found) == 1, found
    return found[0]


def test_a_run_killed_with_its_vm_up_is_closed_and_resumed(app: App, fresh: str, tmp_path: Path) -> None:
    target = f"vm:{fresh}"
    with app.vms.transport(fresh) as ssh:
        inject(ssh, "nginx-config", "directive")
    _killed_run(app, target, tmp_path / "run.log")
    left = _troubleshooting_vms(app)
    assert left, "the killed run's troubleshooting VM should still be there before recovery"
    dead = _session_of(app, target, "running")

    # Any mutating command's start runs recovery, which closes the dead run.
    assert main(["fixes", "recover"]) == 0
    closed = json.loads((app.settings.sessions_dir / str(dead["id"]) / "session.json").read_text())
    assert closed["status"] == SessionStatus.INTERRUPTED, closed
    timeline = json.loads((app.settings.sessions_dir / str(dead["id"]) / "timeline.json").read_text())
    assert any(stage.get("status") == "interrupted" for stage in timeline), timeline
    assert _troubleshooting_vms(app) == [], "recovery must destroy the dead run's troubleshooting VM"
    assert main(["fixes", "recover"]) == 0   # a second start changes nothing
    assert json.loads((app.settings.sessions_dir / str(dead["id"]) / "session.json").read_text()) == closed

    # The next run on the target starts afresh from detection and says which run it takes over
    # from. (The patient is put back first: a full repair would only repeat what every repair test
    # proves, at a minute of make test's budget.)
    app.vms.revert(fresh, HEALTHY)
    outcome = run_repair(app, target, RunOptions(assume_yes=True))
    assert outcome.status == SessionStatus.HEALTHY, json.dumps(outcome.as_dict(), indent=1, default=str)
    meta = json.loads((app.settings.sessions_dir / outcome.session.id / "session.json").read_text())
    assert meta.get("resumed_from") == dead["id"], meta
