"""What every probe family shares: evidence capping, result builders, running a probe's command.

Conventions for :class:`~orchestrator.model.ProbeResult` values built here:

- a passing result has ``ok=True`` and severity ``info``; its ``kind`` is the kind the probe would
  report, so consumers can group results by kind without knowing probe names;
- an unavailable result (the probe could not run: no systemd, no curl, the agent failed on that call)
  has ``ok=False`` *and* ``is_unavailable=True``: consumers must test ``is_unavailable`` first, it is
  neither a pass nor a failure and never becomes an Issue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.installed import EXIT_NOT_FOUND, run_if_installed
from orchestrator.transport.output import OUTPUT_MAX, cap_output, command_output

# command_output and EXIT_NOT_FOUND moved down to the transport package (orchestrator.systemd needs
# them and must not import probes); they stay importable from here.
__all__ = ["EVIDENCE_MAX", "EXIT_NOT_FOUND", "HOST_COMPONENT", "PROBE_OUTPUT_MAX", "ProbeId",
           "cap_evidence", "command_output", "run_command"]

#: Cap of one evidence string: target output is untrusted and ends up in reports and sessions.
EVIDENCE_MAX = OUTPUT_MAX
#: Output kept from a probe command; only EVIDENCE_MAX of it is stored, the rest is never read.
PROBE_OUTPUT_MAX = 64 * 1024
#: Component of host-wide results (disk and inode usage belong to no single component).
HOST_COMPONENT = "host"


def cap_evidence(text: str | bytes, limit: int = EVIDENCE_MAX) -> str:
    """Decode, escape control characters and cap at ``limit`` characters, note included."""
    return cap_output(text, limit)


def run_command(
    transport: Transport, argv: Sequence[str], *, timeout: float, max_output: int = PROBE_OUTPUT_MAX,
) -> CommandResult | None:
    """Run a probe's command; ``None`` when the program does not exist on the target (see
    :func:`orchestrator.transport.installed.run_if_installed`). Output past ``max_output`` is
    counted, not kept (``CommandResult.stdout_dropped``).

    Raises:
        CommandTimeoutError: the command ran past ``timeout`` (the caller decides what that means).
        TransportError: the target cannot be reached or the session broke.
    """
    return run_if_installed(transport, argv, timeout=timeout, max_output=max_output)


@dataclass(frozen=True)
class ProbeId:
    """What one probe observes; builds its results so every result of a probe names it the same way.

    ``kind`` is the kind a failure reports unless :meth:`failed` is given another (a unit probe
    reports UNIT_FAILED or UNIT_INACTIVE).
    """

    probe: str
    component: str
    kind: IssueKind
    subject: str

    def passed(self, summary: str, evidence: Mapping[str, str] | None = None) -> ProbeResult:
        return ProbeResult(self.probe, self.component, True, self.kind, Severity.INFO, self.subject,
                           summary, dict(evidence or {}))

    def failed(
        self, severity: Severity, summary: str, evidence: Mapping[str, str] | None = None,
        *, kind: IssueKind | None = None,
    ) -> ProbeResult:
        return ProbeResult(self.probe, self.component, False, kind or self.kind, severity,
                           self.subject, summary, dict(evidence or {}))

    def unavailable(self, reason: str, evidence: Mapping[str, str] | None = None) -> ProbeResult:
        return ProbeResult(self.probe, self.component, False, self.kind, Severity.INFO, self.subject,
                           f"{self.subject}: not checked: {cap_evidence(reason, 512)}",
                           dict(evidence or {}), is_unavailable=True)
