"""Three of the four validation layers: resolved, no regressions, core features.

The stability layer, which owns a loop and the guest load, is in :mod:`orchestrator.validate.stability`.
Each function returns a :class:`LayerReport`; none raises for a guest problem (a check that cannot be
answered is a failed check), only bugs propagate.
"""

from __future__ import annotations

import shlex
import urllib.parse
from collections.abc import Callable, Iterable

from orchestrator.model import Component, HttpCheck, Issue, IssueKind
from orchestrator.session.store import cap_text
from orchestrator.validate.backend import GuestHost
from orchestrator.validate.probes import ProbeRunner, run_named, run_named_many
from orchestrator.validate.results import LayerName, LayerRecorder, LayerReport

Clock = Callable[[], float]
Verdict = Callable[[], tuple[bool, str]]

UNIT_KINDS = frozenset({IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE})
#: A config test parses every file of the component; give it more than a one-line check.
CONFIG_TEST_TIMEOUT_S = 60.0
#: Extra seconds the transport waits beyond curl's own ``--max-time``.
_CURL_GRACE_S = 10.0
#: Core-feature checks run side by side: enough for a unit, its config test and an HTTP endpoint.
CHECK_WORKERS = 4
_TAIL = 600


def issue_unit(issue: Issue) -> str | None:
    """The systemd unit a unit issue is about (from its ``unit:<name>`` probe, else its subject)."""
    if issue.kind not in UNIT_KINDS:
        return None
    return issue.probe.removeprefix("unit:") if issue.probe.startswith("unit:") else issue.subject


def resolved_layer(issue: Issue, probes: ProbeRunner, guest: GuestHost, *, clock: Clock) -> LayerReport:
    """The probe that found the issue passes now (and, for a unit issue, testinfra sees it running)."""
    rec = LayerRecorder(LayerName.RESOLVED, clock)
    rec.check(f"probe {issue.probe}", lambda: run_named(probes, issue.probe))
    unit = issue_unit(issue)
    if unit is not None:
        rec.check(f"{unit} is running", _running(guest, unit))
    return rec.finish()


def regressions_layer(baseline_passing: Iterable[str], probes: ProbeRunner, *, clock: Clock) -> LayerReport:
    """Every probe that passed in the VM before the attempt still passes."""
    rec = LayerRecorder(LayerName.NO_REGRESSIONS, clock)
    names = sorted(set(baseline_passing))
    if not names:
        rec.add("baseline", True, "no probe passed before the attempt, so none can have regressed")
    # One batch: a runner that can (the Detector) runs them side by side; recorded in name order.
    for name, (ok, detail, seconds) in zip(names, run_named_many(probes, names, clock=clock), strict=True):
        rec.add(f"probe {name}", ok, detail, seconds)
    return rec.finish()


def core_features_layer(component: Component, guest: GuestHost, *, http_timeout_s: float,
                        clock: Clock) -> LayerReport:
    """The component does its job: units running and enabled, config test passes, every HTTP check
    answers its expected status, and something listens on each HTTP port."""
    rec = LayerRecorder(LayerName.CORE_FEATURES, clock)
    checks: list[tuple[str, Verdict]] = []
    for unit in component.units:
        checks.append((f"{unit} is running", _running(guest, unit)))
        checks.append((f"{unit} is enabled", _enabled(guest, unit)))
    if component.config_test:
        checks.append((f"config test: {shlex.join(component.config_test)}",
                       _config_test(guest, component.config_test)))
    for http in component.http:
        checks.append((f"GET {http.url} answers {http.expect_status}", _http(guest, http, http_timeout_s)))
    endpoints: dict[tuple[str, int], None] = {}
    for http in component.http:
        try:
            endpoints[http_endpoint(http.url)] = None
        except ValueError:
            checks.append((f"port of {http.url}",
                           lambda: (False, "the URL's port is not a valid port number")))
    for address, port in endpoints:
        checks.append((f"tcp {address}:{port} is listening", _listening(guest, address, port)))
    # Each check is one read-only command in the guest (testinfra has learnt the host in warm_up):
    # side by side they take the time of the slowest, not the sum (2.2 s -> about 0.8 s under TCG).
    rec.check_all(checks, workers=CHECK_WORKERS)
    if not rec.checks:
        rec.add("declared features", True,
                f"component {component.name} declares no units, config test or HTTP checks")
    return rec.finish()


def http_endpoint(url: str) -> tuple[str, int]:
    """(address, port) an HTTP check connects to; ``localhost`` is taken as 127.0.0.1.

    Raises:
        ValueError: the URL's port is out of range.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), parts.port or 80


def _probe(probes: ProbeRunner, name: str) -> Verdict:
    return lambda: run_named(probes, name)


def _running(guest: GuestHost, unit: str) -> Verdict:
    return lambda: _said(guest.service_is_running(unit), "active", "not active")


def _enabled(guest: GuestHost, unit: str) -> Verdict:
    return lambda: _said(guest.service_is_enabled(unit), "enabled", "not enabled")


def _listening(guest: GuestHost, address: str, port: int) -> Verdict:
    return lambda: _said(guest.port_is_listening(address, port), "listening", "nothing listens there")


def _said(ok: bool, yes: str, no: str) -> tuple[bool, str]:
    return ok, yes if ok else no


def _config_test(guest: GuestHost, argv: tuple[str, ...]) -> Verdict:
    def verdict() -> tuple[bool, str]:
        out = guest.run(argv, timeout=CONFIG_TEST_TIMEOUT_S)
        tail = _tail(out.stderr.strip() or out.stdout.strip())
        return out.succeeded, f"exit {out.exit_status}" + (f": {tail}" if tail else "")
    return verdict


def _http(guest: GuestHost, http: HttpCheck, timeout_s: float) -> Verdict:
    argv = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--write-out", "%{http_code}",
            "--max-time", f"{timeout_s:g}", http.url]

    def verdict() -> tuple[bool, str]:
        out = guest.run(argv, timeout=timeout_s + _CURL_GRACE_S)
        if not out.succeeded:
            return False, f"curl exited {out.exit_status}: {_tail(out.stderr.strip())}"
        status = out.stdout.strip()
        return status == str(http.expect_status), f"HTTP {cap_text(status, 16)}"
    return verdict


def _tail(text: str) -> str:
    """The end of a command's output (where the error usually is), capped and cleaned."""
    return cap_text(text[-_TAIL:] if len(text) > _TAIL else text, _TAIL)
