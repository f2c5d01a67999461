"""``config:<component>`` probes: run the component's own config test (``nginx -t``, ``sshd -t``...).

A non-zero exit is CONFIG_INVALID, critical, with the test's output (capped) as evidence. A test that
does not finish is reported the same way: ``nginx -t`` blocks on an unresolvable upstream, which is a
configuration fault. A test program that is not installed makes the probe unavailable.
"""

from __future__ import annotations

from orchestrator.detect.common import ProbeId, cap_evidence, command_output, run_command
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PREFIX = "config:"
CONFIG_TEST_TIMEOUT_S = 60.0


def probe_name(component: Component) -> str:
    return f"{PREFIX}{component.name}"


def probe_config(transport: Transport, component: Component) -> ProbeResult:
    """Run ``component.config_test`` on the target.

    Raises:
        TransportError: the target cannot be reached.
    """
    argv = list(component.config_test)
    subject = " ".join(argv)
    pid = ProbeId(probe_name(component), component.name, IssueKind.CONFIG_INVALID, subject)
    try:
        result = run_command(transport, argv, timeout=CONFIG_TEST_TIMEOUT_S)
    except CommandTimeoutError:
        return pid.failed(Severity.CRITICAL, f"{component.name}: config test `{subject}` did not "
                          f"finish within {CONFIG_TEST_TIMEOUT_S:g} s", {"argv": cap_evidence(subject)})
    if result is None:
        return pid.unavailable(f"{argv[0]} is not installed on the target")
    evidence = {"argv": cap_evidence(subject), "exit_status": str(result.exit_status),
                "output": command_output(result)}
    if result.succeeded:
        return pid.passed(f"{component.name}: config test passes", evidence)
    return pid.failed(Severity.CRITICAL,
                      f"{component.name}: config test `{subject}` exited {result.exit_status}", evidence)
