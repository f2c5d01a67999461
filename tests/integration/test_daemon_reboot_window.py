"""The daemon performs a maintenance-window reboot when the window opens, on a real VM: a patient
whose next boot would fail (fstab) is repaired under ``reboot.policy: window`` with a window a few
minutes ahead, so the verified fix waits for its reboot; a `vmrepair daemon` process started on the
same state then reboots the patient once the window opens, verifies it after the boot and commits
the fix, exactly as `vmrepair reboot now` would. Before, such a reboot was recorded and announced and
then performed by nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.app import App
from orchestrator.boot.host import boot_id
from orchestrator.cli.main import main
from orchestrator.config.reboot import RebootSettings
from orchestrator.demo.faults import inject
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.reboot.schedule import scheduler_for
from orchestrator.state.transactions import TransactionStore
from tests.integration.helpers import booted_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
MOUNTPOINT = "/mnt/vmrepair-data"
#: The window opens a minute ahead (at a minute boundary). The repair (troubleshooting VM, attempts,
#: a proving reboot there, the apply) may outlast that under TCG; the daemon then finds the window
#: already open, and the assertions (the fix waits for its reboot, the reboot is not performed before
#: the window opened) hold either way.
WINDOW_LEAD_MIN = 1
#: From the window's opening: the daemon's tick, the reboot and the verification after the boot.
DAEMON_DEADLINE_S = 480


@pytest.fixture
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "winpatient", HEALTHY)


def _window_app(app: App, opens: dt.datetime) -> tuple[App, RebootSettings]:
    reboot = RebootSettings(policy="window", windows=[f"{opens:%a %H:%M} for 15m"], timezone="UTC")
    return App(dataclasses.replace(app.settings, reboot=reboot)), reboot


def _daemon_config(app: App, reboot: RebootSettings, target: str, run_dir: Path) -> Path:
    config = {
        "state_dir": str(app.settings.state_dir),
        "reboot": reboot.model_dump(mode="json"),
        # detect-only: the daemon must not start repairs of its own; scheduled reboots are performed
        # under every policy. Detection once an hour keeps it out of the reboot's way.
        "daemon": {"target": target, "policy": "detect-only", "socket": str(run_dir / "api.sock"),
                   "detect_interval_s": 3600, "reboot_check_interval_s": 5},
        "audit": {"path": str(run_dir / "audit.jsonl")},
    }
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fstab_line(app: App, name: str) -> str:
    with app.vms.transport(name) as ssh:
        text = ssh.check(["cat", "/etc/fstab"]).stdout_text
    (line,) = [ln for ln in text.splitlines() if MOUNTPOINT in ln]
    return line


def test_the_daemon_performs_a_window_reboot_when_the_window_opens(
        app: App, patient: str, tmp_path: Path) -> None:
    target = f"vm:{patient}"
    opens = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=WINDOW_LEAD_MIN)).replace(second=0, microsecond=0)
    win_app, reboot = _window_app(app, opens)
    with app.vms.transport(patient) as ssh:
        inject(ssh, "fstab", "uuid")
        boot_before = boot_id(ssh)
    broken = _fstab_line(app, patient)
    assert "nofail" not in broken
    options = RunOptions(assume_yes=True, stable_period_s=5.0, reboot_policy="window")
    outcome = run_repair(win_app, target, options)
    text = json.dumps(outcome.as_dict(), indent=1, default=str)
    assert outcome.status == SessionStatus.PENDING_REBOOT, text
    found = TransactionStore(app.state).find(target=target)
    (txn,) = [t for t in found if t.session_id == outcome.session.id]
    assert txn.state == "pending_reboot", text
    (record,) = scheduler_for(win_app).status(target)
    assert record.state == "scheduled" and record.policy == "window", record
    repaired_at = dt.datetime.now(dt.UTC)
    if repaired_at < opens:   # the run applied the fix and left the reboot to the window
        with app.vms.transport(patient) as ssh:
            assert boot_id(ssh) == boot_before

    wait_s = max(0.0, (opens - repaired_at).total_seconds()) + DAEMON_DEADLINE_S
    run_dir, daemon_log = _daemon_until_settled(app, reboot, target, tmp_path, txn_id=txn.id, wait_s=wait_s)
    after = TransactionStore(app.state).get(txn.id)
    assert after.state == "committed", daemon_log
    (done,) = scheduler_for(win_app).status(target)
    assert done.state == "done", done
    # Not before the window opened (updated_at is when the reboot record was last changed: done).
    assert dt.datetime.fromisoformat(done.updated_at) >= opens, (done, opens)
    with app.vms.transport(patient) as ssh:
        assert boot_id(ssh) != boot_before
        assert ssh.run(["systemctl", "is-system-running"]).stdout_text.strip() in ("running", "degraded")
    fixed = _fstab_line(app, patient)
    assert "nofail" in fixed or fixed.lstrip().startswith("#"), fixed
    events = [json.loads(line)["event"] for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert "daemon_reboots_performed" in events, events
    _assert_proved_dropped_and_rolled_back(app, patient, outcome.session.id, txn.id, broken)


def _daemon_until_settled(app: App, reboot: RebootSettings, target: str, tmp_path: Path, *, txn_id: str,
                          wait_s: float) -> tuple[Path, str]:
    """Run `vmrepair daemon` on the test's state until the fix is no longer waiting for its reboot
    (or ``wait_s`` passed); its run directory and the tail of its log."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    config = _daemon_config(app, reboot, target, run_dir)
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen([str(Path(sys.executable).with_name("vmrepair")), "daemon"],
                                  env={**os.environ, "VMREPAIR_CONFIG": str(config)}, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if TransactionStore(app.state).get(txn_id).state != "pending_reboot":
                    break
                assert daemon.poll() is None, log_path.read_text()[-4000:]
                time.sleep(5)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    return run_dir, log_path.read_text()[-4000:]


def _assert_proved_dropped_and_rolled_back(app: App, patient: str, session_id: str, txn_id: str,
                                           broken: str) -> None:
    """What the automatic-policy test checks too (nightly, since this test covers the same repair):
    the troubleshooting VM was rebooted to prove the fix first, the boot fallback snapshot is dropped
    once the fix verified, and `fixes rollback` puts back exactly what was backed up."""
    attempts = json.loads((app.settings.sessions_dir / session_id / "attempts-boot.json").read_text())
    validated = [a for a in attempts if a.get("outcome") == "validated"]
    assert validated and validated[0]["reboot"]["required"], attempts
    proof = validated[0]["reboot"]["result"]
    assert proof["boot_id_before"] != proof["boot_id_after"]
    assert not [s for s in app.vms.snapshots(patient) if s.name.startswith("vmrepair-pre-")]
    assert main(["fixes", "rollback", txn_id]) == 0
    assert _fstab_line(app, patient) == broken
    assert TransactionStore(app.state).get(txn_id).state == "rolled_back"
