"""up → exec → snapshot → change files → revert → files restored → destroy → nothing left."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.errors import BootError, CommandTimeoutError, VmExistsError
from tests.integration.helpers import domain_exists, unique_name

pytestmark = pytest.mark.integration

VMREPAIR = [str(Path(sys.executable).with_name("vmrepair"))]


def test_guest_is_fully_booted_with_the_template_services(app: App, guest: str) -> None:
    with app.vms.transport(guest) as ssh:
        state = ssh.run(["systemctl", "is-system-running", "--wait"], timeout=120)
        failed = ssh.run(["systemctl", "--failed", "--plain", "--no-legend"], timeout=30)
        assert state.stdout_text.strip() == "running", failed.stdout_text
        for unit in ("ssh", "nginx", "cron", "rsyslog", "sampleapp"):
            assert ssh.run(["systemctl", "is-active", unit]).stdout_text.strip() == "active", unit
        health = ssh.check(["curl", "-fsS", "http://127.0.0.1:8080/health"])
        assert json.loads(health.stdout) == {"status": "ok"}
        assert ssh.check(["curl", "-fsS", "-o", "/dev/null", "-w", "%{http_code}",
                          "http://127.0.0.1/"]).stdout_text == "200"
        user = ssh.check(["systemctl", "show", "-p", "User", "--value", "sampleapp"])
        assert user.stdout_text.strip() == "sampleapp"
        # The effective sshd config (sshd -T) is key-only with just the pinned host key.
        effective = dict(
            line.split(" ", 1) for line in ssh.check(["sshd", "-T"]).stdout_text.splitlines() if " " in line
        )
        assert effective["passwordauthentication"] == "no"
        assert effective["kbdinteractiveauthentication"] == "no"
        assert effective["permitrootlogin"] == "without-password"
        assert effective["hostkey"] == "/etc/ssh/ssh_host_ed25519_key"
        # The guest's network is restricted: nothing outside QEMU's user-net answers.
        out = ssh.run(["curl", "-sS", "-m", "3", "http://10.0.2.2:9/"], timeout=20)
        assert not out.succeeded


def test_snapshot_revert_restores_files(app: App, guest: str) -> None:
    with app.vms.transport(guest) as ssh:
        before = ssh.check(["sha256sum", "/etc/nginx/nginx.conf"]).stdout_text
        app.vms.snapshot(guest, "clean")
        assert [s.name for s in app.vms.snapshots(guest)] == ["clean"]
        ssh.check(["sh", "-c", "echo broken > /etc/nginx/nginx.conf && echo new > /root/marker"])
        assert ssh.check(["cat", "/root/marker"]).stdout_text == "new\n"
    app.vms.revert(guest, "clean")
    with app.vms.transport(guest) as ssh:  # a reverted guest's TCP sessions are gone: reconnect
        assert ssh.check(["sha256sum", "/etc/nginx/nginx.conf"]).stdout_text == before
        assert not ssh.run(["test", "-e", "/root/marker"]).succeeded
    app.vms.delete_snapshot(guest, "clean")
    assert app.vms.snapshots(guest) == []


def test_hung_command_is_bounded_and_guest_stays_usable(app: App, guest: str) -> None:
    with app.vms.transport(guest) as ssh:
        began = time.monotonic()
        with pytest.raises(CommandTimeoutError) as info:
            ssh.run(["sleep", "600"], timeout=3)
        assert time.monotonic() - began < 30
        assert "sleep" in str(info.value)
    with app.vms.transport(guest) as ssh:
        assert ssh.check(["echo", "still here"]).stdout_text == "still here\n"


def test_cli_exec_streams_and_returns_remote_exit_code(guest: str) -> None:
    proc = subprocess.run(
        [*VMREPAIR, "vm", "exec", guest, "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 7
    assert proc.stdout == "out\n"
    assert "err" in proc.stderr
    listed = subprocess.run([*VMREPAIR, "vm", "list", "--json"], capture_output=True, text=True,
                            timeout=60, check=True)
    names = {vm["name"]: vm for vm in json.loads(listed.stdout)["vms"]}
    assert names[guest]["state"] == "running"


def test_name_collision_is_refused(app: App, guest: str) -> None:
    with pytest.raises(VmExistsError) as info:
        app.vms.up(guest)
    assert "already exists" in info.value.message
    assert domain_exists(guest)  # the running guest was not touched


def test_destroy_leaves_nothing(app: App) -> None:
    name = unique_name("gone")
    app.vms.up(name)
    vm_dir = app.vms.vm_dir(name)
    assert domain_exists(name) and (vm_dir / "disk.qcow2").exists()
    app.vms.destroy(name)
    assert not domain_exists(name)
    assert not vm_dir.exists()
    assert name not in {vm.name for vm in app.vms.list()}


def test_guest_that_never_answers_ssh_is_reported_and_cleaned_up(app: App) -> None:
    name = unique_name("noboot")
    # The guest boots, but sshd is masked: SSH never answers, so the deadline must fire.
    with pytest.raises(BootError) as info:
        app.vms.up(name, boot_timeout=30, cmdline_extra="systemd.mask=ssh.service")
    err = info.value
    assert err.serial_log is not None and err.serial_log in str(err.remedy)
    log = Path(err.serial_log)
    assert log.exists() and b"Linux version" in log.read_bytes()
    assert "did not answer SSH within 30 s" in err.message
    assert not domain_exists(name)
    assert not app.vms.vm_dir(name).exists()
