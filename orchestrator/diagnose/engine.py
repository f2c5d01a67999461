"""Run the diagnostics of every applicable playbook in the troubleshooting VM and pick a cause."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from orchestrator.diagnose.result import Diagnosis, DiagnosticRun, Finding
from orchestrator.diagnose.rules import evaluate
from orchestrator.errors import CommandTimeoutError, StepNotApplicableError
from orchestrator.model import Component, Issue
from orchestrator.playbooks.model import UNKNOWN_CAUSE, Diagnostic, Playbook
from orchestrator.playbooks.placeholders import builtin_values
from orchestrator.session.store import MAX_TEXT, Session, cap_text
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)

#: Bytes of each stream kept from a diagnostic (journals can be long; the rest is counted, not kept).
MAX_DIAGNOSTIC_OUTPUT = 256 * 1024
#: Characters of output that rules search: enough for `systemctl status` or 50 journal lines, and a
#: bound on regex work over untrusted text.
MAX_MATCH_TEXT = 64 * 1024


def diagnose(
    playbooks: Sequence[Playbook],
    issue: Issue,
    component: Component,
    transport: Transport,
    *,
    session: Session | None = None,
) -> Diagnosis:
    """Run the diagnostics of the playbooks that apply to ``issue`` and evaluate their rules.

    Diagnostics are read-only commands; one whose placeholders have no valid value here (a component
    without units, a subject that is not a path) is recorded as not run, and a timeout as not finished —
    neither matches any rule. A command shared by several playbooks runs once.

    The verdict is the most confident finding (ties: playbook order); with no matching rule it is cause
    ``unknown`` at confidence 0, and only ``for_causes: ["*"]`` strategies can apply.

    Raises:
        TransportError: the VM cannot be reached (a timeout of one diagnostic is not an error).
        StateError: the session's evidence file cannot be written.
    """
    values = builtin_values(issue, component)
    selected = [p for p in playbooks if p.applies_to(issue.component, issue.kind)]
    cache: dict[tuple[str, ...], DiagnosticRun] = {}
    findings: list[Finding] = []
    all_runs: list[DiagnosticRun] = []
    for playbook in selected:
        runs: dict[str, DiagnosticRun] = {}
        for diagnostic in playbook.diagnostics:
            run = _run(playbook.name, diagnostic, values, transport, cache)
            runs[diagnostic.name] = run
            all_runs.append(run)
            if session is not None:
                session.event("diagnose", "diagnostic", **run.as_dict())
        finding = evaluate(playbook, runs)
        findings.append(finding)
        if session is not None:
            session.event("diagnose", "finding", **finding.as_dict())
    return _verdict(findings, all_runs)


def _run(
    playbook: str,
    diagnostic: Diagnostic,
    values: dict[str, str],
    transport: Transport,
    cache: dict[tuple[str, ...], DiagnosticRun],
) -> DiagnosticRun:
    try:
        argv = tuple(token.render(values) for token in diagnostic.argv)
    except StepNotApplicableError as exc:
        return DiagnosticRun(playbook, diagnostic.name, (), None, "", note=f"not run: {exc.message}")
    if argv in cache:
        cached = cache[argv]
        return DiagnosticRun(playbook, diagnostic.name, argv, cached.exit_status, cached.output,
                             cached.duration_s, cached.note)
    began = time.monotonic()
    try:
        result = transport.run(argv, timeout=diagnostic.timeout_s, max_output=MAX_DIAGNOSTIC_OUTPUT)
    except CommandTimeoutError:
        run = DiagnosticRun(playbook, diagnostic.name, argv, None, "", time.monotonic() - began,
                            note=f"did not finish within {diagnostic.timeout_s:g} s")
    else:
        # Rules see stdout then stderr: `nginx -t` and systemd tools report on stderr.
        text = result.stdout_text
        if text and result.stderr and not text.endswith("\n"):
            text += "\n"
        text += result.stderr_text
        note = "output truncated" if result.is_truncated else ""
        run = DiagnosticRun(playbook, diagnostic.name, argv, result.exit_status,
                            cap_text(text, MAX_MATCH_TEXT), result.duration_s, note)
    log.debug("diagnostic %s/%s exited %s", playbook, diagnostic.name, run.exit_status)
    cache[argv] = run
    return run


def _verdict(findings: list[Finding], runs: list[DiagnosticRun]) -> Diagnosis:
    best: Finding | None = None
    for finding in findings:
        # Strictly greater: on a tie the earlier playbook (file-name order) keeps the verdict.
        if finding.cause != UNKNOWN_CAUSE and (best is None or finding.confidence > best.confidence):
            best = finding
    variables: dict[str, str] = dict(best.variables) if best else {}
    for finding in findings:
        for name, value in finding.variables.items():
            variables.setdefault(name, value)
    evidence: dict[str, str] = {}
    argv_of: dict[str, tuple[str, ...]] = {}
    for run in runs:
        key = run.name
        if key in argv_of and argv_of[key] != run.argv:
            key = f"{run.playbook}/{run.name}"
        argv_of.setdefault(key, run.argv)
        evidence[key] = cap_text(run.output or f"({run.note})", MAX_TEXT)
    if best is None:
        return Diagnosis(UNKNOWN_CAUSE, 0.0, None, evidence, variables, tuple(findings), tuple(runs))
    return Diagnosis(best.cause, best.confidence, best.playbook, evidence, variables,
                     tuple(findings), tuple(runs))
