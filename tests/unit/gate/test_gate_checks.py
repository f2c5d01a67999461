"""Which probes the gate runs for a unit's component, and the allow/refuse verdict on the fake host."""

from __future__ import annotations

import time
from dataclasses import replace

from orchestrator.agent.api import JsonlReport
from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector
from orchestrator.errors import AgentError
from orchestrator.gate import evaluate, owner_of, prestart_probes
from orchestrator.gate.checks import judge
from orchestrator.model import REPORT_ONLY, Component, IssueKind, ProbeResult, Severity
from tests.unit.detect.fakes import FAILED, FakeHost, target_agent
from tests.unit.template_watch import template_watch

WATCH = template_watch()
LOG = "/var/lib/sampleapp/interactions.jsonl"


def _result(probe: str, *, ok: bool = False, severity: Severity = Severity.CRITICAL,
            unavailable: bool = False, evidence: dict[str, str] | None = None) -> ProbeResult:
    return ProbeResult(probe, "nginx", ok, IssueKind.CONFIG_INVALID, severity, "nginx", f"{probe} said so",
                       evidence or {}, is_unavailable=unavailable)


def test_only_checks_that_can_run_before_the_start_are_chosen() -> None:
    detector = Detector(WATCH, FakeHost().transport(), target_agent())
    assert prestart_probes(detector, "nginx") == ["config:nginx", "dpkg:nginx", "pkgmeta:nginx",
                                                  "symlinks:nginx"]
    assert prestart_probes(detector, "sampleapp") == [f"jsonl:{LOG}", "symlinks:sampleapp",
                                                      "writable:/var/lib/sampleapp"]


def test_owner_is_found_by_unit_socket_and_template() -> None:
    assert owner_of(WATCH, "nginx.service").name == "nginx"  # type: ignore[union-attr]
    assert owner_of(WATCH, "syslog.socket").name == "rsyslog"  # type: ignore[union-attr]
    watch = WatchConfig((Component("getty", units=("getty@.service",)),))
    assert owner_of(watch, "getty@tty1.service").name == "getty"  # type: ignore[union-attr]
    assert owner_of(WATCH, "postgresql.service") is None


def test_healthy_host_allows_and_is_fast() -> None:
    started = time.perf_counter()
    verdict = evaluate(WATCH, "nginx.service", FakeHost().transport(), target_agent())
    elapsed = time.perf_counter() - started
    print(f"gate evaluation of nginx.service on the fake template host: {elapsed * 1000:.1f} ms")
    assert verdict.allowed
    assert verdict.checked == ("config:nginx", "dpkg:nginx", "pkgmeta:nginx", "symlinks:nginx")
    assert verdict.reason == "4 pre-start check(s) of nginx pass"
    assert elapsed < 2.0


def test_failing_config_test_refuses_with_its_reason() -> None:
    host = FakeHost(config_tests={"nginx": (1, b"nginx: [emerg] unknown directive\n")})
    transport = host.transport()
    verdict = evaluate(WATCH, "nginx.service", transport, target_agent())
    assert not verdict.allowed
    assert verdict.component == "nginx"
    assert [r.probe for r in verdict.failed] == ["config:nginx"]
    assert verdict.reason == "config:nginx: nginx: config test `nginx -t` exited 1"
    # Nothing that needs the running service was asked: no curl, no ss.
    assert not {argv[0] for argv in transport.argvs} & {"curl", "ss"}


def test_a_failed_unit_and_a_dead_endpoint_do_not_refuse_the_start() -> None:
    """Those are what starting is for: the unit is failed *because* it is down."""
    host = FakeHost(units={"nginx.service": FAILED},
                    http={"http://127.0.0.1:80/": (7, b"000", b"curl: (7) refused\n")}, listening=b"")
    assert evaluate(WATCH, "nginx.service", host.transport(), target_agent()).allowed


def test_corrupt_interaction_log_refuses_sampleapp() -> None:
    corrupt = JsonlReport(LOG, exists=True, total_lines=3, good_lines=2, bad_lines=((2, "not JSON"),))
    verdict = evaluate(WATCH, "sampleapp.service", FakeHost().transport(), target_agent(jsonl={LOG: corrupt}))
    assert not verdict.allowed
    assert verdict.reason == f"jsonl:{LOG}: {LOG}: 1 bad lines out of 3"


def test_unit_of_no_component_is_allowed_without_probing() -> None:
    transport = FakeHost().transport()
    verdict = evaluate(WATCH, "postgresql.service", transport, target_agent())
    assert (verdict.allowed, verdict.component, verdict.checked) == (True, None, ())
    assert verdict.reason == "postgresql.service belongs to no watched component"
    assert transport.argvs == []


def test_component_without_prestart_checks_is_allowed() -> None:
    watch = WatchConfig((Component("web", units=("web.service",), ports=(80,)),))
    verdict = evaluate(watch, "web.service", FakeHost().transport(), target_agent())
    assert verdict.allowed
    assert verdict.reason == "web has no check that can run before it starts"


def test_a_probe_that_cannot_run_is_no_evidence_against_the_start() -> None:
    watch = replace(WATCH, components=(WATCH.component("sampleapp"),))
    agent = target_agent(errors={"jsonl_check": AgentError("agent broke")})
    verdict = evaluate(watch, "sampleapp.service", FakeHost().transport(), agent)
    assert verdict.allowed
    assert f"jsonl:{LOG}" in verdict.checked


def test_only_critical_failures_refuse() -> None:
    checked = ("config:nginx", "dpkg:nginx", "pkgmeta:nginx", "symlinks:nginx")
    warned = judge("nginx.service", "nginx", checked, [
        _result("config:nginx", ok=True), _result("dpkg:nginx", severity=Severity.WARNING),
        _result("pkgmeta:nginx", unavailable=True),
        _result("symlinks:nginx", evidence={REPORT_ONLY: "drift that may be intended"}),
    ])
    assert warned.allowed
    assert [r.probe for r in warned.warnings] == ["dpkg:nginx", "symlinks:nginx"]
    assert warned.reason == ("4 pre-start check(s) of nginx pass "
                             "(2 warning(s): dpkg:nginx: dpkg:nginx said so)")
    refused = judge("nginx.service", "nginx", checked, [_result("config:nginx"), _result("dpkg:nginx")])
    assert not refused.allowed
    assert refused.reason == "config:nginx: config:nginx said so (and 1 more)"
