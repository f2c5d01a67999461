"""The resolved, no-regressions and core-features layers, each passing and failing, with fakes."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError, ConnectError
from orchestrator.model import Component, HttpCheck, Issue, IssueKind, Severity
from orchestrator.transport.fake import FakeTransport
from orchestrator.validate.backend import GuestHost
from orchestrator.validate.layers import (
    core_features_layer,
    http_endpoint,
    issue_unit,
    regressions_layer,
    resolved_layer,
)
from orchestrator.validate.results import LayerName, LayerRecorder, LayerStatus
from tests.unit.validate.fakes import FakeClock, FakeGuest, FakeProbes, result

NGINX = Component(name="nginx", units=("nginx.service",), config_test=("nginx", "-t"),
                  http=(HttpCheck("http://127.0.0.1:80/"),))


CURL = ("curl --silent --show-error --output /dev/null --write-out '%{http_code}' --max-time 5 "
        "http://127.0.0.1:80/")


def _issue(kind: IssueKind = IssueKind.UNIT_FAILED, probe: str = "unit:nginx.service") -> Issue:
    return Issue("nginx", kind, Severity.CRITICAL, probe.partition(":")[2], "nginx.service failed", probe)


def _details(layer: object) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in layer.checks}  # type: ignore[attr-defined]


# -- resolved -------------------------------------------------------------------------------------

def test_resolved_passes_when_probe_and_testinfra_agree(probes: FakeProbes, transport: FakeTransport,
                                                        clock: FakeClock) -> None:
    layer = resolved_layer(_issue(), probes, GuestHost(transport), clock=clock)
    assert layer.status is LayerStatus.PASSED
    assert _details(layer) == {"probe unit:nginx.service": (True, "ok"),
                               "nginx.service is running": (True, "active")}


def test_resolved_fails_when_the_probe_still_fails(probes: FakeProbes, transport: FakeTransport,
                                                   clock: FakeClock) -> None:
    probes.state["unit:nginx.service"] = False
    layer = resolved_layer(_issue(), probes, GuestHost(transport), clock=clock)
    assert layer.status is LayerStatus.FAILED
    assert _details(layer)["probe unit:nginx.service"] == (False, "broken")


def test_resolved_fails_when_testinfra_sees_the_unit_down(probes: FakeProbes, guest: FakeGuest,
                                                          transport: FakeTransport, clock: FakeClock) -> None:
    guest.active.clear()
    layer = resolved_layer(_issue(), probes, GuestHost(transport), clock=clock)
    assert not layer.passed
    assert _details(layer)["nginx.service is running"] == (False, "not active")


def test_resolved_without_systemd_fails_instead_of_passing(
        probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock) -> None:
    guest.systemd = False
    layer = resolved_layer(_issue(), probes, GuestHost(transport), clock=clock)
    ok, detail = _details(layer)["nginx.service is running"]
    assert not ok
    assert "systemd is not running in the guest" in detail
    assert layer.status is LayerStatus.FAILED


@pytest.mark.parametrize(("setup", "expected"), [
    ("unavailable", "probe could not run: broken"),
    ("unknown", "no probe named 'unit:nginx.service' any more"),
    ("config_error", "probe could not run: unknown probe"),
    ("unreachable", "probe could not run: vm: connection refused"),
])
def test_resolved_fails_when_the_probe_cannot_answer(setup: str, expected: str, transport: FakeTransport,
                                                     clock: FakeClock) -> None:
    class Probes(FakeProbes):
        def run_probe(self, name: str):  # type: ignore[no-untyped-def]
            if setup == "unavailable":
                return result(name, False, unavailable=True)
            if setup == "unknown":
                raise KeyError(name)
            if setup == "config_error":
                raise ConfigError("unknown probe")
            raise ConnectError("vm: connection refused")

    issue = _issue(IssueKind.CONFIG_INVALID, "config:nginx")
    layer = resolved_layer(issue, Probes(), GuestHost(transport), clock=clock)
    assert not layer.passed
    ok, detail = _details(layer)[f"probe {issue.probe}"]
    assert not ok
    assert detail == expected.replace("unit:nginx.service", issue.probe)


def test_issue_unit_only_for_unit_issues() -> None:
    assert issue_unit(_issue()) == "nginx.service"
    assert issue_unit(_issue(IssueKind.HTTP_DOWN, "http:http://127.0.0.1:80/")) is None


# -- no regressions ------------------------------------------------------------------------------

def test_no_regressions_passes_when_baseline_still_passes(probes: FakeProbes, clock: FakeClock) -> None:
    layer = regressions_layer({"unit:cron.service", "config:nginx"}, probes, clock=clock)
    assert layer.passed
    assert [c.name for c in layer.checks] == ["probe config:nginx", "probe unit:cron.service"]
    assert probes.calls == ["config:nginx", "unit:cron.service"]


def test_no_regressions_names_the_probe_that_broke(probes: FakeProbes, clock: FakeClock) -> None:
    probes.state["unit:cron.service"] = False
    layer = regressions_layer({"unit:cron.service", "config:nginx"}, probes, clock=clock)
    assert layer.status is LayerStatus.FAILED
    assert layer.detail == "1 of 2 checks failed"
    assert [c.name for c in layer.failed_checks] == ["probe unit:cron.service"]


def test_no_regressions_with_an_empty_baseline_says_so(probes: FakeProbes, clock: FakeClock) -> None:
    layer = regressions_layer(set(), probes, clock=clock)
    assert layer.passed
    assert layer.checks[0].detail == "no probe passed before the attempt, so none can have regressed"


# -- core features -------------------------------------------------------------------------------

def test_core_features_all_pass(transport: FakeTransport, clock: FakeClock) -> None:
    layer = core_features_layer(NGINX, GuestHost(transport), http_timeout_s=5, clock=clock)
    assert layer.passed, layer
    assert _details(layer) == {
        "nginx.service is running": (True, "active"),
        "nginx.service is enabled": (True, "enabled"),
        "config test: nginx -t": (True, "exit 0: nginx: configuration file /etc/nginx/nginx.conf test is "
                                        "successful"),
        "GET http://127.0.0.1:80/ answers 200": (True, "HTTP 200"),
        "tcp 127.0.0.1:80 is listening": (True, "listening"),
    }


def test_core_features_curl_command_line(transport: FakeTransport, clock: FakeClock) -> None:
    core_features_layer(NGINX, GuestHost(transport), http_timeout_s=2.5, clock=clock)
    curl = next(c for c in transport.calls if c.argv[2].startswith("curl"))
    assert curl.argv[2] == CURL.replace("--max-time 5", "--max-time 2.5")
    assert curl.timeout == 12.5


BREAKAGES = {
    "disabled": ("nginx.service is enabled", "not enabled"),
    "stopped": ("nginx.service is running", "not active"),
    "config": ("config test: nginx -t", 'exit 1: nginx: [emerg] unknown directive "lisen"'),
    "http": ("GET http://127.0.0.1:80/ answers 200", "HTTP 503"),
    "refused": ("GET http://127.0.0.1:80/ answers 200", "curl exited 7: curl: (7) Failed to connect"),
    "no_curl": ("GET http://127.0.0.1:80/ answers 200", "curl exited 127: sh: 1: curl: not found"),
    "socket": ("tcp 127.0.0.1:80 is listening", "nothing listens there"),
}


def _break(guest: FakeGuest, breakage: str) -> None:
    if breakage == "disabled":
        guest.enabled.clear()
    elif breakage == "stopped":
        guest.active.clear()
    elif breakage == "config":
        guest.commands["nginx -t"] = (1, b"", b'nginx: [emerg] unknown directive "lisen"\n')
    elif breakage == "http":
        guest.http["http://127.0.0.1:80/"] = 503
    elif breakage == "refused":
        guest.http.clear()
    elif breakage == "no_curl":
        guest.commands[CURL] = (127, b"", b"sh: 1: curl: not found\n")
    elif breakage == "socket":
        guest.listening = ["127.0.0.1:8080"]


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_core_features_each_failure_fails_the_layer(breakage: str, guest: FakeGuest, transport: FakeTransport,
                                                    clock: FakeClock) -> None:
    check, detail = BREAKAGES[breakage]
    _break(guest, breakage)
    layer = core_features_layer(NGINX, GuestHost(transport), http_timeout_s=5, clock=clock)
    assert layer.status is LayerStatus.FAILED
    failed = {c.name: c.detail for c in layer.failed_checks}
    assert list(failed) == [check]
    assert failed[check].startswith(detail)


def test_core_features_without_systemd_fail(guest: FakeGuest, transport: FakeTransport,
                                             clock: FakeClock) -> None:
    guest.systemd = False
    layer = core_features_layer(NGINX, GuestHost(transport), http_timeout_s=5, clock=clock)
    failed = [c.name for c in layer.failed_checks]
    assert failed == ["nginx.service is running", "nginx.service is enabled"]
    assert not layer.passed


def test_core_features_of_a_component_without_features(transport: FakeTransport, clock: FakeClock) -> None:
    layer = core_features_layer(Component(name="data"), GuestHost(transport), http_timeout_s=5, clock=clock)
    assert layer.passed
    assert layer.checks[0].detail == "component data declares no units, config test or HTTP checks"


def test_http_endpoint() -> None:
    assert http_endpoint("http://127.0.0.1:8080/health") == ("127.0.0.1", 8080)
    assert http_endpoint("http://localhost/") == ("127.0.0.1", 80)
    assert http_endpoint("http://[::1]:81/") == ("::1", 81)


def test_bad_port_fails_the_layer(transport: FakeTransport, clock: FakeClock) -> None:
    comp = Component(name="x", http=(HttpCheck("http://127.0.0.1:99999/"),))
    layer = core_features_layer(comp, GuestHost(transport), http_timeout_s=5, clock=clock)
    assert "port of http://127.0.0.1:99999/" in [c.name for c in layer.failed_checks]


# -- the recorder's invariant ---------------------------------------------------------------------

def test_a_layer_without_checks_fails(clock: FakeClock) -> None:
    layer = LayerRecorder(LayerName.STABLE, clock).finish()
    assert layer.status is LayerStatus.FAILED
    assert layer.detail == "no check ran, so nothing was verified"


def test_check_durations_come_from_the_injected_clock(clock: FakeClock) -> None:
    rec = LayerRecorder(LayerName.RESOLVED, clock)

    def slow() -> tuple[bool, str]:
        clock.now += 1.5
        return True, "fine"

    rec.check("slow", slow)
    layer = rec.finish()
    assert layer.checks[0].duration_s == 1.5
    assert layer.duration_s == 1.5
    assert layer.as_dict()["checks"] == [{"name": "slow", "ok": True, "detail": "fine", "duration_s": 1.5}]
