"""``http:<url>`` probes: request an endpoint *on the target* (services listen on its loopback).

Asked through the agent when it can (:class:`HttpAsking`: the real client, whose served process on the
target answers without starting a program: a ``curl`` cost about 1.3 s under TCG with the other probes
running, measured), else ``curl`` runs on the target through the transport, as an argv. Either way no
proxy (``--noproxy '*'``; the agent uses none): a proxy set in the target's environment must never stand
between us and the target's own loopback; no redirect is followed; a certificate is verified. Any status
other than the expected one, or no answer at all, is HTTP_DOWN, critical. The agent answers one request
at a time: an endpoint that hangs holds its other requests back for up to the HTTP timeout (5 s by
default), the price of not starting a program per check; reads batched before the probes run are not
affected.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from orchestrator.detect.common import ProbeId, cap_evidence, run_command
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.model import Component, HttpCheck, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PREFIX = "http:"
#: Grace beyond curl's own --max-time before the transport gives up on the command.
_TRANSPORT_GRACE_S = 10.0
_STATUS_RE = re.compile(r"^[0-9]{3}$")
#: What curl's %{http_code} prints when no HTTP answer arrived.
_NO_ANSWER = "000"


@runtime_checkable
class HttpAsking(Protocol):
    """An agent that can GET a URL from the target itself (the real client does)."""

    def http_status(self, url: str, *, timeout_s: float) -> tuple[int | None, str]:
        """Raises: AgentError, TransportError."""
        ...


def probe_name(check: HttpCheck) -> str:
    return f"{PREFIX}{check.url}"


def curl_argv(url: str, timeout_s: float) -> list[str]:
    return ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
            "--max-time", f"{timeout_s:g}", url]


def probe_http(
    transport: Transport, component: Component, check: HttpCheck, timeout_s: float,
    agent: HttpAsking | None = None,
) -> ProbeResult:
    """Request ``check.url`` on the target and compare the status with ``check.expect_status``
    (through ``agent`` when given, else with curl).

    Raises:
        TransportError: the target cannot be reached.
    """
    url = check.url
    pid = ProbeId(probe_name(check), component.name, IssueKind.HTTP_DOWN, url)
    expected = str(check.expect_status)
    if agent is not None:
        return _ask_agent(agent, pid, url, expected, timeout_s)
    try:
        result = run_command(transport, curl_argv(url, timeout_s), timeout=timeout_s + _TRANSPORT_GRACE_S)
    except CommandTimeoutError:
        return pid.failed(Severity.CRITICAL, f"{url}: no answer, curl itself hung",
                          {"expected": expected})
    if result is None:
        return pid.unavailable("curl is not installed on the target")
    answer = result.stdout_text.strip()
    status = answer if _STATUS_RE.match(answer) else _NO_ANSWER
    evidence = {"expected": expected, "status": status, "curl_exit": str(result.exit_status)}
    if status == _NO_ANSWER:
        evidence["curl_error"] = cap_evidence(result.stderr.strip() or answer, 1024)
    return _verdict(pid, url, status, expected, evidence=evidence, why_none=f"curl exit {result.exit_status}")


def _ask_agent(agent: HttpAsking, pid: ProbeId, url: str, expected: str, timeout_s: float) -> ProbeResult:
    try:
        status, error = agent.http_status(url, timeout_s=timeout_s)
    except AgentError as exc:
        return pid.unavailable(f"the agent could not request {url}: {exc.message}")
    answered = _NO_ANSWER if status is None else str(status)
    evidence = {"expected": expected, "status": answered, "asked_by": "agent"}
    if status is None:
        evidence["error"] = cap_evidence(error, 1024)
    return _verdict(pid, url, answered, expected, evidence=evidence, why_none=cap_evidence(error, 200))


def _verdict(pid: ProbeId, url: str, status: str, expected: str, *, evidence: dict[str, str],
             why_none: str) -> ProbeResult:
    """One rule for both ways of asking: the expected status passes, anything else is HTTP_DOWN."""
    if status == expected:
        return pid.passed(f"{url} answered {status}", evidence)
    if status == _NO_ANSWER:
        return pid.failed(Severity.CRITICAL, f"{url}: no HTTP answer ({why_none})", evidence)
    return pid.failed(Severity.CRITICAL, f"{url} answered {status}, expected {expected}", evidence)
