"""End to end on real VMs: a patient booted from the template is broken on purpose, `run_repair`
reproduces the fault in a troubleshooting VM, repairs and validates it there, applies the fix package to
the patient and verifies it. Each assertion afterwards checks the patient independently of vmrepair."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.baseline.record import record_baseline
from orchestrator.demo.faults import inject
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.targets.spec import parse_target
from orchestrator.transport.base import Transport
from tests.integration.helpers import booted_patient, fresh_patient

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
STABLE_S = 5.0


@pytest.fixture(scope="module")
def patient(app: App) -> Iterator[str]:
    yield from booted_patient(app, "patient", HEALTHY)


@pytest.fixture
def fresh(app: App, patient: str) -> Iterator[str]:
    """The patient back at its healthy snapshot, without a baseline unless a test records one."""
    yield from fresh_patient(app, patient, HEALTHY)


def _ssh(app: App, name: str) -> Transport:
    return app.vms.transport(name)


def _repair(app: App, name: str, **kwargs: object) -> dict[str, object]:
    outcome = run_repair(app, f"vm:{name}", RunOptions(assume_yes=True, stable_period_s=STABLE_S,
                                                       **kwargs))  # type: ignore[arg-type]
    data = outcome.as_dict()
    data["exit_code"] = outcome.exit_code
    return data


def _healthy(ssh: Transport, unit: str) -> None:
    assert ssh.run(["systemctl", "is-active", unit]).stdout_text.strip() == "active"


# Nightly: make test's tests/integration/test_ssh_target.py repairs the same fault, without a baseline,
# on a patient reached as ssh:// with sudo, and checks the same config test, unit state and HTTP 200.
@pytest.mark.nightly
def test_nginx_config_fault_is_repaired_without_a_baseline(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, "nginx-config", "directive")
        assert not ssh.run(["nginx", "-t"]).succeeded
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    assert result["exit_code"] == 0
    with _ssh(app, fresh) as ssh:
        assert ssh.run(["nginx", "-t"]).succeeded
        _healthy(ssh, "nginx")
        code = ssh.check(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/"])
        assert code.stdout_text == "200"


# Nightly: make test's catalog subset runs the same baseline restore (nginx-site-bad-directive,
# nginx-restore-offender) end to end; 67 s of make test's 45-minute budget.
@pytest.mark.nightly
def test_nginx_broken_brace_is_repaired_from_the_baseline(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        record_baseline(app.settings, parse_target(f"vm:{fresh}").slug, ssh, RemoteAgent(ssh),
                        app.settings.watch)
        before = ssh.check(["sha256sum", "/etc/nginx/sites-available/default"]).stdout_text
        inject(ssh, "nginx-config", "brace")
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    with _ssh(app, fresh) as ssh:
        assert ssh.check(["sha256sum", "/etc/nginx/sites-available/default"]).stdout_text == before
        _healthy(ssh, "nginx")


# Nightly: make test's tests/integration/test_install.py dry-runs the same fault with the installed
# command and checks the same outcome and untouched file.
@pytest.mark.nightly
def test_dry_run_leaves_the_target_untouched(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, "nginx-config", "directive")
        broken = ssh.check(["sha256sum", "/etc/nginx/sites-available/default"]).stdout_text
    result = _repair(app, fresh, dry_run=True)
    assert result["status"] == SessionStatus.NOT_REPAIRED
    assert any(c.get("dry_run") for c in result["components"])  # type: ignore[union-attr]
    with _ssh(app, fresh) as ssh:
        assert ssh.check(["sha256sum", "/etc/nginx/sites-available/default"]).stdout_text == broken
        assert ssh.run(["systemctl", "is-active", "nginx"]).stdout_text.strip() != "active"


# Nightly (112 s; make test ran 52 min against its 45 at bd45069): the catalog subset's nginx-masked
# repairs a unit-state fault end to end in make test; `make demo FAULT=unit-dropin` runs this one.
@pytest.mark.nightly
def test_unit_dropin_fault_is_repaired(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, "unit-dropin", "execstart")
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    with _ssh(app, fresh) as ssh:
        _healthy(ssh, "sampleapp")
        health = ssh.check(["curl", "-fsS", "http://127.0.0.1:8080/health"])
        assert json.loads(health.stdout) == {"status": "ok"}


# Nightly: 286 s in make test (compressing a multi-GB log under TCG), the slowest test there; the
# catalog's sampleapp-disk-full runs the same repair nightly, and the agent's compression is unit-tested.
@pytest.mark.nightly
def test_disk_full_is_repaired_without_losing_the_log(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, "disk-full", "97")
        size = int(ssh.check(["stat", "-c", "%s", "/var/log/sampleapp/debug.log"]).stdout_text)
        data_before = ssh.check(["sha256sum", "/var/lib/sampleapp/interactions.jsonl"]).stdout_text \
            if ssh.run(["test", "-e", "/var/lib/sampleapp/interactions.jsonl"]).succeeded else None
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    with _ssh(app, fresh) as ssh:
        pct = int(ssh.check(["df", "--output=pcent", "/"]).stdout_text.split()[-1].rstrip("%"))
        assert pct < 90
        archives = ssh.check(["sh", "-c", "ls /var/log/sampleapp/debug.log.*.gz"]).stdout_text.split()
        assert len(archives) == 1
        # The runaway log's content survives, compressed: nothing was deleted.
        restored = ssh.check(["sh", "-c", f"gzip -dc {archives[0]} | wc -c"]).stdout_text.strip()
        assert int(restored) == size
        if data_before is not None:
            after = ssh.check(["sha256sum", "/var/lib/sampleapp/interactions.jsonl"]).stdout_text
            assert after == data_before


def test_jsonl_log_fault_keeps_good_lines_and_quarantines_the_rest(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, "jsonl-log", "mixed")
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    with _ssh(app, fresh) as ssh:
        _healthy(ssh, "sampleapp")
        lines = ssh.check(["cat", "/var/lib/sampleapp/interactions.jsonl"]).stdout.splitlines()
        parsed = [json.loads(line) for line in lines if line.strip()]
        # 40 written, one unrecoverable, one line held two objects: at least 38 originals survive.
        stamps = {p["ts"] for p in parsed if "ts" in p}
        assert len({s for s in stamps if s.startswith("2026-11-20T10:")}) >= 39
        quarantine = ssh.check(["sh", "-c", "ls /var/lib/sampleapp/ | grep quarantine"]).stdout_text
        assert quarantine.strip()


def test_stopped_service_is_restarted_in_place(app: App, fresh: str) -> None:
    with _ssh(app, fresh) as ssh:
        ssh.check(["systemctl", "stop", "cron"])
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    assert any(c.get("in_place") for c in result["components"])  # type: ignore[union-attr]
    with _ssh(app, fresh) as ssh:
        _healthy(ssh, "cron")


#: The other variants of each fault class: the playbooks must fix the class, not one injected line.
NIGHTLY_VARIANTS = [
    ("nginx-config", "new-site", "nginx"),
    ("unit-dropin", "user", "sampleapp"),
    ("unit-dropin", "env", "sampleapp"),
    ("jsonl-log", "torn", "sampleapp"),
    ("jsonl-log", "binary", "sampleapp"),
    ("disk-full", "99", "sampleapp"),
]


@pytest.mark.nightly
@pytest.mark.parametrize(("fault", "variant", "unit"), NIGHTLY_VARIANTS,
                         ids=[f"{f}-{v}" for f, v, _ in NIGHTLY_VARIANTS])
def test_fault_variant_is_repaired(app: App, fresh: str, fault: str, variant: str, unit: str) -> None:
    with _ssh(app, fresh) as ssh:
        inject(ssh, fault, variant)
    result = _repair(app, fresh)
    assert result["status"] == SessionStatus.REPAIRED, json.dumps(result, indent=1, default=str)
    with _ssh(app, fresh) as ssh:
        _healthy(ssh, unit)
        probe = run_repair(app, f"vm:{fresh}", RunOptions(dry_run=True))
        assert probe.status == SessionStatus.HEALTHY, probe.summary
