"""Triage: grouping issues per component, the in-place/escalate decision and the in-place restart."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.components.config import WatchConfig
from orchestrator.components.defaults import DEFAULT_COMPONENTS
from orchestrator.errors import ConnectError
from orchestrator.model import Component, Issue, IssueKind, ProbeResult, Severity
from orchestrator.pipeline.triage import (
    RESTART_ATTEMPTS,
    components_for,
    decide,
    group_issues,
    is_report_only,
    is_system_path_issue,
    restart_in_place,
    will_escalate,
)
from orchestrator.transport.fake import FakeTransport
from tests.unit.systemd.fakes import Clock, FakeSystemd

NGINX = Component("nginx", units=("nginx.service",))
APP = Component("sampleapp", units=("sampleapp.service", "sampleapp-worker.service"))
NO_UNITS = Component("data", units=())


def issue(kind: IssueKind, component: str = "nginx", subject: str = "") -> Issue:
    return Issue(component, kind, Severity.CRITICAL, subject or f"{component}-{kind}", "summary",
                 f"probe:{kind}")


def probe(ok: bool, name: str = "http:http://127.0.0.1:80/", *, unavailable: bool = False) -> ProbeResult:
    return ProbeResult(name, "nginx", ok, IssueKind.HTTP_DOWN, Severity.CRITICAL, "subject", "summary",
                       is_unavailable=unavailable)


class Recheck:
    """Answers each recheck with the next list of results; counts the calls."""

    def __init__(self, *answers: list[ProbeResult]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> list[ProbeResult]:
        self.calls += 1
        return self.answers.pop(0)


# -- group_issues ---------------------------------------------------------------------------------

def test_one_primary_per_component_the_most_fundamental_kind() -> None:
    http = issue(IssueKind.HTTP_DOWN)
    config = issue(IssueKind.CONFIG_INVALID)
    failed = issue(IssueKind.UNIT_FAILED)
    groups = group_issues([http, config, failed])
    assert groups == [(config, (failed, http))]


def test_a_port_down_is_a_symptom_of_the_unit_state() -> None:
    port = issue(IssueKind.PORT_DOWN)
    inactive = issue(IssueKind.UNIT_INACTIVE)
    assert group_issues([port, inactive]) == [(inactive, (port,))]


def test_components_keep_their_order_of_appearance() -> None:
    app = issue(IssueKind.UNIT_FAILED, "sampleapp")
    nginx = issue(IssueKind.HTTP_DOWN, "nginx")
    assert [primary for primary, _ in group_issues([app, nginx])] == [app, nginx]


def test_disk_issues_come_first_whatever_their_position() -> None:
    app = issue(IssueKind.LOG_CORRUPT, "sampleapp")
    nginx = issue(IssueKind.CONFIG_INVALID, "nginx")
    inodes = issue(IssueKind.INODES_FULL, "host", "/var")
    disk = issue(IssueKind.DISK_FULL, "host", "/")
    groups = group_issues([app, nginx, inodes, disk])
    assert [g[0] for g in groups] == [disk, app, nginx]
    assert groups[0][1] == (inodes,)


def test_disk_full_outranks_a_failed_unit_of_the_same_component() -> None:
    failed = issue(IssueKind.UNIT_FAILED, "sampleapp")
    full = issue(IssueKind.DISK_FULL, "sampleapp")
    assert group_issues([failed, full]) == [(full, (failed,))]


def test_grouping_leaves_the_callers_list_alone() -> None:
    issues = [issue(IssueKind.HTTP_DOWN), issue(IssueKind.CONFIG_INVALID)]
    before = list(issues)
    group_issues(issues)
    assert issues == before


def test_no_issues_no_groups() -> None:
    assert group_issues([]) == []


# -- decide ---------------------------------------------------------------------------------------

def test_restartable_kinds_on_a_component_with_units_restart_in_place() -> None:
    decision = decide(issue(IssueKind.UNIT_FAILED), (issue(IssueKind.HTTP_DOWN),), NGINX)
    assert decision.in_place is True
    assert decision.reason == (f"only http_down, unit_failed: restart in place with {RESTART_ATTEMPTS} "
                               "attempts before escalating")


def test_a_stopped_service_whose_port_is_down_restarts_in_place() -> None:
    decision = decide(issue(IssueKind.UNIT_INACTIVE), (issue(IssueKind.HTTP_DOWN),
                                                       issue(IssueKind.PORT_DOWN)), NGINX)
    assert decision.in_place is True
    assert decision.reason == (f"only http_down, port_down, unit_inactive: restart in place with "
                               f"{RESTART_ATTEMPTS} attempts before escalating")


@pytest.mark.parametrize("kind", [IssueKind.CONFIG_INVALID, IssueKind.LOG_CORRUPT, IssueKind.DISK_FULL,
                                  IssueKind.INODES_FULL, IssueKind.BOOT_CONFIG, IssueKind.PACKAGE_BROKEN,
                                  IssueKind.PATH_MISSING, IssueKind.PERMISSIONS])
def test_a_kind_a_restart_cannot_fix_escalates_and_is_named(kind: IssueKind) -> None:
    decision = decide(issue(IssueKind.UNIT_FAILED), (issue(kind),), NGINX)
    assert decision.in_place is False
    assert decision.reason == f"a restart cannot fix {kind}; escalating to a troubleshooting VM"


def test_every_blocking_kind_is_named_in_sorted_order() -> None:
    decision = decide(issue(IssueKind.LOG_CORRUPT), (issue(IssueKind.CONFIG_INVALID),
                                                     issue(IssueKind.HTTP_DOWN)), NGINX)
    assert decision.reason == ("a restart cannot fix config_invalid, log_corrupt; "
                               "escalating to a troubleshooting VM")


@pytest.mark.parametrize("component", [None, NO_UNITS], ids=["unknown-component", "no-units"])
def test_nothing_to_restart_escalates(component: Component | None) -> None:
    decision = decide(issue(IssueKind.UNIT_FAILED), (), component)
    assert decision.in_place is False
    assert decision.reason == "no unit to restart for this issue; escalating"


def test_a_boot_issue_is_never_fixed_in_place() -> None:
    # The default boot component has no units: nothing to restart, and nothing a restart could prove.
    boot = next(c for c in DEFAULT_COMPONENTS if c.name == "boot")
    decision = decide(issue(IssueKind.BOOT_CONFIG, "boot", "/etc/fstab"), (), boot)
    assert decision.in_place is False
    assert decision.reason == "no unit to restart for this issue; escalating"


def test_decision_as_dict_lists_related_by_id() -> None:
    primary, related = issue(IssueKind.UNIT_FAILED), issue(IssueKind.HTTP_DOWN)
    data = decide(primary, (related,), NGINX).as_dict()
    assert data["issue"] == primary.as_dict()
    assert data["related"] == [related.id]
    assert data["in_place"] is True


# -- restart_in_place -----------------------------------------------------------------------------

def restart(fake: FakeSystemd, component: Component, recheck: Recheck | Callable[[], list[ProbeResult]],
            clock: Clock | None = None) -> tuple[bool, list[dict[str, object]]]:
    clock = clock or Clock()
    return restart_in_place(FakeTransport(fake), component, recheck, deadline_s=30, sleep=clock.sleep,
                            clock=clock)


def changes(fake: FakeSystemd) -> list[tuple[str, ...]]:
    return [a for a in fake.argvs if a[1] != "show"]


def test_success_on_the_first_attempt_stops_there() -> None:
    fake, clock = FakeSystemd(), Clock()
    recheck = Recheck([probe(True)], [probe(True)])
    fixed, log = restart(fake, NGINX, recheck, clock)
    assert fixed is True
    assert changes(fake) == [("systemctl", "reset-failed", "--", "nginx.service"),
                             ("systemctl", "--no-block", "restart", "--", "nginx.service")]
    assert recheck.calls == 1
    assert clock.sleeps[-1] == 2.0
    assert log == [{"attempt": 1, "unit": "nginx.service", "restart": "started", "state": "active/running"},
                   {"attempt": 1, "failing_after": [], "passing_after": ["http:http://127.0.0.1:80/"]}]


def test_every_unit_is_reset_and_restarted_in_order() -> None:
    fake = FakeSystemd()
    restart(fake, APP, Recheck([probe(True)]))
    assert fake.restarts() == ["sampleapp.service", "sampleapp-worker.service"]
    assert [a[1] for a in changes(fake)] == ["reset-failed", "--no-block", "reset-failed", "--no-block"]


def test_second_attempt_waits_longer_and_can_succeed() -> None:
    fake, clock = FakeSystemd(), Clock()
    recheck = Recheck([probe(False)], [probe(True)])
    fixed, log = restart(fake, NGINX, recheck, clock)
    assert fixed is True
    assert 2.0 in clock.sleeps and clock.sleeps[-1] == 4.0
    assert log[1] == {"attempt": 1, "failing_after": ["http:http://127.0.0.1:80/"], "passing_after": []}
    assert log[-1] == {"attempt": 2, "failing_after": [], "passing_after": ["http:http://127.0.0.1:80/"]}


def test_gives_up_after_the_allowed_attempts() -> None:
    fake = FakeSystemd()
    recheck = Recheck(*([probe(False)] for _ in range(RESTART_ATTEMPTS + 1)))
    fixed, log = restart(fake, NGINX, recheck)
    assert fixed is False
    assert recheck.calls == RESTART_ATTEMPTS
    assert len(fake.restarts()) == RESTART_ATTEMPTS
    assert [entry["attempt"] for entry in log if "failing_after" in entry] == [1, 2]


def test_a_probe_that_could_not_run_is_not_a_failure() -> None:
    recheck = Recheck([probe(True), probe(False, "unit:nginx.service", unavailable=True)])
    fixed, _ = restart(FakeSystemd(), NGINX, recheck)
    assert fixed is True


def test_a_failed_restart_is_logged_and_the_probes_decide() -> None:
    fixed, log = restart(FakeSystemd(fail={"nginx.service"}), NGINX, Recheck([probe(False)], [probe(False)]))
    assert fixed is False
    assert log[0]["restart"] == "failed" and log[0]["state"] == "failed/failed"
    assert "restart of nginx.service failed" in str(log[0]["detail"])
    assert [entry["attempt"] for entry in log if "failing_after" in entry] == [1, 2]


def test_a_hung_restart_is_killed_and_ends_the_in_place_repair_not_the_run() -> None:
    """Issue 16: a stop stuck in stop-sigterm once hit the 90 s command deadline and ended the run
    ``error``; now it is a failed restart after the deadline, and the caller escalates."""
    fake, clock = FakeSystemd(hang={"nginx.service"}), Clock()
    recheck = Recheck()
    fixed, log = restart(fake, NGINX, recheck, clock)
    assert fixed is False
    assert recheck.calls == 0  # no second attempt: it would hang as long again
    assert fake.killed == ["nginx.service"]
    assert log == [{"attempt": 1, "unit": "nginx.service", "restart": "hung",
                    "state": "deactivating/stop-sigterm", "detail": log[0]["detail"]}]
    assert "hung (deactivating/stop-sigterm after 30 s)" in str(log[0]["detail"])
    assert 30.0 <= clock.now - 1000.0 < 40.0


def test_a_transport_error_reaches_the_caller() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("fake: connection refused")

    recheck = Recheck()
    with pytest.raises(ConnectError, match="connection refused"):
        restart_in_place(FakeTransport(handler), NGINX, recheck, sleep=lambda _: None)
    assert recheck.calls == 0


def test_restart_in_place_is_not_fixed_when_every_probe_was_unavailable() -> None:
    """Probes that could not run prove nothing: that must never be reported as repaired."""
    unavailable = ProbeResult("unit:cron.service", "cron", False, IssueKind.UNIT_INACTIVE, Severity.INFO,
                              "cron.service", "no systemd", is_unavailable=True)
    cron = Component(name="cron", units=("cron.service",))
    fixed, log = restart(FakeSystemd(), cron, lambda: [unavailable])
    assert fixed is False
    assert log[-1]["passing_after"] == []


# -- system paths ----------------------------------------------------------------------------------

def sysdir(path: str, kind: IssueKind = IssueKind.PERMISSIONS) -> Issue:
    return Issue("host", kind, Severity.CRITICAL, path, f"{path}: not sticky", f"sysdir:{path}")


@pytest.mark.parametrize("path", ["/tmp", "/var/tmp", "/etc", "/usr", "/var", "/etc/sudoers.d"])
def test_a_system_directorys_mode_is_repairable(path: str) -> None:
    assert is_system_path_issue(sysdir(path)) and not is_report_only(sysdir(path))


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/passwd", "/etc/group"])
def test_a_system_files_mode_is_repairable(path: str) -> None:
    # Only the file's own entry travels (mode, owner, digest): its content never leaves the target.
    assert is_system_path_issue(sysdir(path)) and not is_report_only(sysdir(path))


@pytest.mark.parametrize("issue", [
    sysdir("/"),                                  # no fix package may name /
    sysdir("/tmp", IssueKind.PATH_MISSING),
    sysdir("/etc/shadow", IssueKind.PATH_MISSING),  # recreating it would need its content
    Issue("host", IssueKind.MEMORY_PRESSURE, Severity.WARNING, "memory", "pressure", "memory:pressure"),
    Issue("host", IssueKind.PERMISSIONS, Severity.WARNING, "/tmp", "x", "kernel:taint"),
])
def test_every_other_host_issue_stays_report_only(issue: Issue) -> None:
    assert not is_system_path_issue(issue) and is_report_only(issue)


def test_disk_issues_keep_their_path() -> None:
    disk = issue(IssueKind.DISK_FULL, "host", "/")
    assert not is_report_only(disk)
    assert components_for(WatchConfig((NGINX, Component("app", log_paths=("/var/log/app",)))), disk) == [
        Component("app", log_paths=("/var/log/app",))]


def test_a_system_directory_is_repaired_on_a_synthetic_host_component() -> None:
    (host,) = components_for(WatchConfig((NGINX,)), sysdir("/var/tmp"))
    assert (host.name, host.units, host.writable_paths, host.vital) == ("host", (), ("/var/tmp",), True)
    assert (host.config_paths, host.unit_paths, host.data_paths) == ((), (), ())
    decision = decide(sysdir("/var/tmp"), (), host)
    assert not decision.in_place and "no unit to restart" in decision.reason


def test_a_system_file_is_repaired_on_a_synthetic_host_component_that_packs_nothing() -> None:
    (host,) = components_for(WatchConfig((NGINX,)), sysdir("/etc/shadow"))
    assert (host.name, host.units, host.writable_paths) == ("host", (), ("/etc/shadow",))
    assert host.all_paths == ()   # what the capture packs: nothing, so never the file's content


def test_report_only_host_issues_group_apart_from_a_repairable_one() -> None:
    memory = Issue("host", IssueKind.MEMORY_PRESSURE, Severity.WARNING, "memory", "pressure",
                   "memory:pressure")
    tmp = sysdir("/tmp")
    assert group_issues([memory, tmp]) == [(memory, ()), (tmp, ())]
    disk = issue(IssueKind.DISK_FULL, "host", "/")
    assert group_issues([tmp, disk, memory]) == [(disk, (tmp,)), (memory, ())]


def _result(kind: IssueKind, *, ok: bool = False, component: str = "nginx", unavailable: bool = False,
            evidence: dict[str, str] | None = None) -> ProbeResult:
    return ProbeResult(f"probe:{kind}", component, ok, kind, Severity.CRITICAL, "subject", "summary",
                       dict(evidence or {}), is_unavailable=unavailable)


def test_only_a_repaired_failure_no_restart_can_fix_boots_the_vm_during_detection() -> None:
    assert will_escalate(_result(IssueKind.CONFIG_INVALID))
    assert will_escalate(_result(IssueKind.DISK_FULL, component="host"))
    assert not will_escalate(_result(IssueKind.CONFIG_INVALID, ok=True))
    assert not will_escalate(_result(IssueKind.CONFIG_INVALID, unavailable=True))
    assert not will_escalate(_result(IssueKind.UNIT_FAILED))        # a restart in place may fix it
    assert not will_escalate(_result(IssueKind.MEMORY_PRESSURE, component="host"))   # reported only
    assert not will_escalate(_result(IssueKind.PERMISSIONS, evidence={"report_only": "may be intended"}))
