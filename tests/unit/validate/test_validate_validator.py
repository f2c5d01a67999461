"""The Validator: four layers, the overall verdict, and what is skipped when."""

from __future__ import annotations

import json
import threading

from orchestrator.components.config import WatchConfig
from orchestrator.detect.common import HOST_COMPONENT
from orchestrator.model import REPORT_ONLY, Component, HttpCheck, Issue, IssueKind, ProbeResult, Severity
from orchestrator.transport.fake import FakeTransport
from orchestrator.validate import LayerName, LayerStatus, ValidationReport, Validator
from orchestrator.validate.validator import stable_filter
from tests.unit.validate.fakes import FakeClock, FakeGuest, FakeProbes, result

NGINX = Component(name="nginx", units=("nginx.service",), config_test=("nginx", "-t"),
                  http=(HttpCheck("http://127.0.0.1:80/"),))
WATCH = WatchConfig((NGINX,))
ISSUE = Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx", "nginx -t fails", "config:nginx")
BASELINE = {"unit:cron.service"}


def _validator(transport: FakeTransport, probes: FakeProbes, clock: FakeClock,
               period: float = 6) -> Validator:
    return Validator(transport, probes, WATCH, stable_period_s=period, load=True, sleep=clock.sleep,
                     clock=clock, token=lambda: "0badcafe")


def test_everything_passes(probes: FakeProbes, guest: FakeGuest, transport: FakeTransport,
                           clock: FakeClock) -> None:
    report = _validator(transport, probes, clock).validate(ISSUE, NGINX, BASELINE)
    assert report.passed
    assert [(layer.name, layer.status) for layer in report.layers] == [
        (LayerName.RESOLVED, LayerStatus.PASSED), (LayerName.STABLE, LayerStatus.PASSED),
        (LayerName.NO_REGRESSIONS, LayerStatus.PASSED), (LayerName.CORE_FEATURES, LayerStatus.PASSED)]
    assert guest.load_stops == ["vmrepair-load-0badcafe"]
    assert clock.sleeps == [2.0, 2.0, 2.0]
    data = json.loads(json.dumps(report.as_dict()))
    assert data["passed"] is True
    assert (data["issue"], data["component"]) == (ISSUE.id, "nginx")
    assert [layer["name"] for layer in data["layers"]] == ["resolved", "stable", "no_regressions",
                                                           "core_features"]
    assert set(data["layers"][0]) == {"name", "status", "passed", "detail", "duration_s", "checks"}
    assert set(data["layers"][0]["checks"][0]) == {"name", "ok", "detail", "duration_s"}


def test_unresolved_issue_skips_stability_but_still_checks_the_rest(
        probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock) -> None:
    probes.state["config:nginx"] = False
    report = _validator(transport, probes, clock).validate(ISSUE, NGINX, BASELINE)
    assert not report.passed
    stable = report.layer(LayerName.STABLE)
    assert (stable.status, stable.detail, stable.passed) == (
        LayerStatus.SKIPPED, "not run: the issue is not resolved", False)
    assert not any(argv[0] == "systemd-run" for argv in transport.argvs)
    assert clock.sleeps == []
    assert report.layer(LayerName.NO_REGRESSIONS).passed
    assert report.layer(LayerName.CORE_FEATURES).passed


def test_a_regression_fails_the_verdict(probes: FakeProbes, transport: FakeTransport,
                                        clock: FakeClock) -> None:
    probes.state["unit:cron.service"] = False
    report = _validator(transport, probes, clock, period=0).validate(ISSUE, NGINX, BASELINE)
    assert not report.passed
    assert [layer.name for layer in report.layers if not layer.passed] == [LayerName.NO_REGRESSIONS]


def test_a_guest_without_systemd_is_never_repaired(probes: FakeProbes, guest: FakeGuest,
                                                   transport: FakeTransport, clock: FakeClock) -> None:
    guest.systemd = False
    report = _validator(transport, probes, clock, period=0).validate(ISSUE, NGINX, BASELINE)
    assert not report.passed
    assert not report.layer(LayerName.STABLE).passed          # systemd-run refused
    assert not report.layer(LayerName.CORE_FEATURES).passed   # unit checks cannot run


def test_a_disk_issue_watches_the_host_probes_too(transport: FakeTransport, clock: FakeClock) -> None:
    disk = Issue("host", IssueKind.DISK_FULL, Severity.CRITICAL, "/", "/ is 99% full", "disk:/")
    state = {"disk:/": True, "unit:nginx.service": True}

    class Probes(FakeProbes):
        def run_all(self) -> list[ProbeResult]:
            self.calls.append("*")
            state["disk:/"] = len(self.calls) < 3  # the log fills the disk again
            return [result("disk:/", state["disk:/"], "host"),
                    result("unit:nginx.service", True, "nginx")]

        def run_probe(self, name: str) -> ProbeResult:
            return result(name, state[name], "host" if name == "disk:/" else "nginx")

    report = _validator(transport, Probes(), clock).validate(disk, NGINX, set())
    stable = report.layer(LayerName.STABLE)
    assert not stable.passed
    assert [c.name for c in stable.failed_checks] == ["probe disk:/"]


def test_report_type_is_importable_from_validator_module() -> None:
    from orchestrator.validate import validator

    assert validator.ValidationReport is ValidationReport


def test_layers_3_and_4_run_during_the_last_round_of_the_stability_period(
    probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock
) -> None:
    """They see the host at the end of the period without adding their seconds after it."""
    regression_ran = threading.Event()
    seen_in_last_wait: list[bool] = []

    def before(name: str) -> None:
        if name == "unit:cron.service":
            regression_ran.set()

    def sleep(seconds: float) -> None:
        if len(clock.sleeps) == 2:   # the wait before the last round
            seen_in_last_wait.append(regression_ran.wait(timeout=5))
        clock.sleep(seconds)

    probes.before = before
    validator = Validator(transport, probes, WATCH, stable_period_s=6, load=True, sleep=sleep, clock=clock,
                          token=lambda: "0badcafe")
    report = validator.validate(ISSUE, NGINX, BASELINE)
    assert report.passed
    assert seen_in_last_wait == [True]


def test_layers_3_and_4_start_so_that_they_end_with_the_period(
    probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock
) -> None:
    """A run of every probe took 2 s on that host: under load they are started 3 s before a 10 s period
    ends (at +7, splitting the wait from +6 to +8), not at its last round."""
    start = clock.now
    regression_ran = threading.Event()
    seen: list[tuple[float, bool]] = []

    def before(name: str) -> None:
        if name == "unit:cron.service":
            regression_ran.set()

    def sleep(seconds: float) -> None:
        seen.append((clock.now - start, regression_ran.wait(timeout=5) if clock.now - start >= 7 else
                     regression_ran.is_set()))
        clock.sleep(seconds)

    probes.before = before
    validator = Validator(transport, probes, WATCH, stable_period_s=10, load=True, sleep=sleep, clock=clock,
                          token=lambda: "0badcafe", full_round_s=2.0)
    report = validator.validate(ISSUE, NGINX, BASELINE)
    assert report.passed
    assert clock.sleeps == [2.0, 2.0, 2.0, 1.0, 1.0, 2.0]
    assert seen == [(0.0, False), (2.0, False), (4.0, False), (6.0, False), (7.0, True), (8.0, True)]


def test_on_the_target_layers_3_and_4_start_with_the_period(
    probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock
) -> None:
    """side_layers="start": the regression check is under way before the first wait of the period."""
    regression_ran = threading.Event()
    seen_in_first_wait: list[bool] = []

    def before(name: str) -> None:
        if name == "unit:cron.service":
            regression_ran.set()

    def sleep(seconds: float) -> None:
        if not clock.sleeps:
            seen_in_first_wait.append(regression_ran.wait(timeout=5))
        clock.sleep(seconds)

    probes.before = before
    validator = Validator(transport, probes, WATCH, stable_period_s=6, load=False, sleep=sleep, clock=clock,
                          side_layers="start")
    report = validator.validate(ISSUE, NGINX, BASELINE)
    assert report.passed and seen_in_first_wait == [True]
    assert [layer.name for layer in report.layers] == [LayerName.RESOLVED, LayerName.STABLE,
                                                       LayerName.NO_REGRESSIONS, LayerName.CORE_FEATURES]
    assert clock.sleeps == [2.0, 2.0, 2.0]   # the period itself is not shortened


def test_a_system_directory_repair_judges_only_the_sysdir_probes_for_stability(
        transport: FakeTransport, clock: FakeClock) -> None:
    tmp = Issue("host", IssueKind.PERMISSIONS, Severity.CRITICAL, "/tmp", "/tmp: not sticky", "sysdir:/tmp")
    host = Component("host", writable_paths=("/tmp",), origin="builtin")
    probes = FakeProbes(state={"sysdir:/tmp": True, "sysdir:/var/tmp": True, "memory:pressure": False,
                               "kernel:taint": False, "unit:nginx.service": True},
                        components={"sysdir:/tmp": "host", "sysdir:/var/tmp": "host",
                                    "memory:pressure": "host", "kernel:taint": "host"})
    report = _validator(transport, probes, clock, period=0).validate(tmp, host, {"sysdir:/tmp"})
    stable = report.layer(LayerName.STABLE)
    assert stable.passed, stable
    judged = {check.name for check in stable.checks if check.name.startswith("probe ")}
    assert judged == {"probe sysdir:/tmp", "probe sysdir:/var/tmp"}
    assert report.passed


def test_a_failing_sysdir_probe_still_fails_a_host_repairs_stability(
        transport: FakeTransport, clock: FakeClock) -> None:
    tmp = Issue("host", IssueKind.PERMISSIONS, Severity.CRITICAL, "/tmp", "/tmp: not sticky", "sysdir:/tmp")
    host = Component("host", writable_paths=("/tmp",), origin="builtin")
    probes = FakeProbes(state={"sysdir:/tmp": True, "sysdir:/var/tmp": False},
                        components={"sysdir:/tmp": "host", "sysdir:/var/tmp": "host"})
    report = _validator(transport, probes, clock, period=0).validate(tmp, host, set())
    assert not report.layer(LayerName.STABLE).passed


def test_a_report_only_drift_is_not_judged_by_the_stability_layer_but_an_opened_file_is() -> None:
    """A config directory handed to a service account (reported, never repaired) must not fail the
    repair of the component's real fault; a file the repair left writable by every user must."""
    web = Component("web", units=("web.service",))
    issue = Issue("web", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "web", "bad", "config:web")
    drift = ProbeResult("pkgmeta:web", "web", False, IssueKind.PERMISSIONS, Severity.WARNING, "web", "drift",
                        {REPORT_ONLY: "may be intended"})
    opened = ProbeResult("pkgmeta:web", "web", False, IssueKind.PERMISSIONS, Severity.CRITICAL, "web",
                         "0666", {"opened": "/etc/web/web.conf"})
    keep = stable_filter(issue, web)
    assert not keep(drift) and keep(opened) and keep(result("config:web", ok=True))
    host = Issue(HOST_COMPONENT, IssueKind.PERMISSIONS, Severity.CRITICAL, "/tmp", "not sticky",
                 "sysdir:/tmp")
    on_host = stable_filter(host, Component(HOST_COMPONENT))
    assert not on_host(drift) and on_host(opened)


def test_a_probe_that_could_not_run_before_the_attempt_either_is_not_judged_by_stability() -> None:
    """Found on a host layer: apache2's package-metadata probe needs the .deb in the apt cache, which
    the layer does not keep, so it cannot run in the VM before or after the repair. Not judged then;
    judged when it ran before (a repair that breaks a probe) or when it is the issue's own probe."""
    web = Component("web", units=("web.service",))
    issue = Issue("web", IssueKind.UNIT_INACTIVE, Severity.WARNING, "web.service", "disabled",
                  "unit:web.service")
    cannot = ProbeResult("pkgmeta:web", "web", False, IssueKind.PERMISSIONS, Severity.INFO, "web",
                         "web: not checked: no web_1.0_amd64.deb in /var/cache/apt/archives", {},
                         is_unavailable=True)
    assert not stable_filter(issue, web, {"unit:web.service"})(cannot)
    assert stable_filter(issue, web, {"unit:web.service", "pkgmeta:web"})(cannot)
    own = ProbeResult("unit:web.service", "web", False, IssueKind.UNIT_INACTIVE, Severity.INFO, "web",
                      "not checked", {}, is_unavailable=True)
    assert stable_filter(issue, web, set())(own)
    # A probe that ran and failed is judged whatever it did before.
    assert stable_filter(issue, web, set())(result("config:web", ok=False))


def test_stability_passes_when_only_a_probe_unavailable_before_the_attempt_cannot_run(
        transport: FakeTransport, clock: FakeClock) -> None:
    web = Component("web", units=("web.service",))
    issue = Issue("web", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "web", "bad", "config:web")
    probes = FakeProbes(state={"config:web": True, "pkgmeta:web": False},
                        components={"config:web": "web", "pkgmeta:web": "web"},
                        unavailable=frozenset({"pkgmeta:web"}))
    report = _validator(transport, probes, clock, period=0).validate(issue, web, {"config:web"})
    assert report.layer(LayerName.STABLE).passed, report
