"""``jsonl:<path>`` probes: a watched JSON-lines file parses line by line (checked by the agent).

Bad lines or a torn last line (a crash mid-write) are LOG_CORRUPT, critical: the application that
reads the file back typically refuses to start. A file that does not exist is fine (nothing was
logged yet). Evidence lists the first bad lines with their reasons, capped.
"""

from __future__ import annotations

from orchestrator.agent.api import AgentApi, AgentRead
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.errors import AgentError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity

PREFIX = "jsonl:"
#: Bad lines listed in the evidence; the count says how many there were in all.
MAX_LISTED_BAD_LINES = 20


def probe_name(path: str) -> str:
    return f"{PREFIX}{path}"


def first_reads(path: str) -> tuple[AgentRead, ...]:
    """The agent read the probe of ``path`` starts with (batched by the Detector)."""
    return (("jsonl_check", {"path": path}),)


def probe_jsonl(agent: AgentApi, component: Component, path: str) -> ProbeResult:
    """Check ``path`` on the target.

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    pid = ProbeId(probe_name(path), component.name, IssueKind.LOG_CORRUPT, path)
    try:
        report = agent.jsonl_check(path)
    except AgentError as exc:
        return pid.unavailable(f"the agent could not check {path}: {exc.message}")
    if not report.exists:
        return pid.passed(f"{path} does not exist (yet)")
    evidence = {"total_lines": str(report.total_lines), "good_lines": str(report.good_lines),
                "bad_line_count": str(len(report.bad_lines)),
                "torn_tail": "true" if report.torn_tail else "false"}
    if report.ok:
        return pid.passed(f"{path}: {report.total_lines} lines parse", evidence)
    listed = report.bad_lines[:MAX_LISTED_BAD_LINES]
    text = "\n".join(f"line {number}: {cap_evidence(reason, 200)}" for number, reason in listed)
    if len(report.bad_lines) > len(listed):
        text += f"\n... and {len(report.bad_lines) - len(listed)} more"
    evidence["bad_lines"] = cap_evidence(text)
    what = [f"{len(report.bad_lines)} bad lines"] if report.bad_lines else []
    if report.torn_tail:
        what.append("a torn last line")
    return pid.failed(Severity.CRITICAL, f"{path}: {' and '.join(what)} out of {report.total_lines}",
                      evidence)
