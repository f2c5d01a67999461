"""Evaluate a playbook's rules over its diagnostics' output."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.diagnose.result import DiagnosticRun, Finding
from orchestrator.playbooks.model import UNKNOWN_CAUSE, Playbook, Rule
from orchestrator.playbooks.placeholders import MAX_VALUE


def rule_matches(rule: Rule, run: DiagnosticRun | None) -> bool:
    """All conditions of ``rule.when`` hold. A diagnostic that did not run or finish matches nothing,
    not even ``not_matches``: absence of evidence must not become a diagnosis."""
    if run is None or run.exit_status is None:
        return False
    if rule.exit_status is not None and run.exit_status != rule.exit_status:
        return False
    if rule.matches is not None and not rule.matches.search(run.output):
        return False
    return rule.not_matches is None or not rule.not_matches.search(run.output)


def extract(rule: Rule, run: DiagnosticRun) -> dict[str, str]:
    """The rule's ``extract`` variables found in the output (first match each); values that could not
    safely fill a placeholder (too long, NUL, leading '-') are left out."""
    found: dict[str, str] = {}
    for var, pattern in rule.extract:
        match = pattern.search(run.output)
        if match is None or match.group(1) is None:
            continue
        value = match.group(1).strip()
        if value and len(value) <= MAX_VALUE and "\0" not in value and not value.startswith("-"):
            found[var] = value
    return found


def evaluate(playbook: Playbook, runs: Mapping[str, DiagnosticRun]) -> Finding:
    """The first matching rule gives the cause; variables come from every matching rule, in order
    (the first value of a variable wins), so a later rule can add what an earlier one does not extract.
    """
    cause, confidence, index = UNKNOWN_CAUSE, 0.0, None
    variables: dict[str, str] = {}
    for i, rule in enumerate(playbook.rules):
        run = runs.get(rule.diagnostic)
        if run is None or not rule_matches(rule, run):
            continue
        if index is None:
            cause, confidence, index = rule.cause, rule.confidence, i
        for var, value in extract(rule, run).items():
            variables.setdefault(var, value)
    return Finding(playbook.name, cause, confidence, index, variables)
