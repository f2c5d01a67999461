"""``http:<url>`` probes: request an endpoint *on the target* (services listen on its loopback).

``curl`` runs on the target through the transport, as an argv. ``--noproxy '*'``: a proxy set in the
target's environment must never stand between us and the target's own loopback. Any status other than
the expected one, or no answer at all, is HTTP_DOWN, critical.
"""

from __future__ import annotations

import re

from orchestrator.detect.common import ProbeId, cap_evidence, run_command
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, HttpCheck, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PREFIX = "http:"
#: Grace beyond curl's own --max-time before the transport gives up on the command.
_TRANSPORT_GRACE_S = 10.0
_STATUS_RE = re.compile(r"^[0-9]{3}$")
#: What curl's %{http_code} prints when no HTTP answer arrived.
_NO_ANSWER = "000"


def probe_name(check: HttpCheck) -> str:
    return f"{PREFIX}{check.url}"


def curl_argv(url: str, timeout_s: float) -> list[str]:
    return ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
            "--max-time", f"{timeout_s:g}", url]


def probe_http(
    transport: Transport, component: Component, check: HttpCheck, timeout_s: float
) -> ProbeResult:
    """Request ``check.url`` on the target and compare the status with ``check.expect_status``.

    Raises:
        TransportError: the target cannot be reached.
    """
    url = check.url
    pid = ProbeId(probe_name(check), component.name, IssueKind.HTTP_DOWN, url)
    expected = str(check.expect_status)
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
    if status == expected:
        return pid.passed(f"{url} answered {status}", evidence)
    if status == _NO_ANSWER:
        evidence["curl_error"] = cap_evidence(result.stderr.strip() or answer, 1024)
        return pid.failed(Severity.CRITICAL, f"{url}: no HTTP answer (curl exit {result.exit_status})",
                          evidence)
    return pid.failed(Severity.CRITICAL, f"{url} answered {status}, expected {expected}", evidence)
