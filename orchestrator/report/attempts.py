"""Diagnosis and repair-attempt sections of a component.

Read from ``diagnosis-<component>.json`` (``cause``, ``confidence``, ``evidence``, ``variables``, ...)
and ``attempts-<component>.json`` (a list of :meth:`AttemptRecord.as_dict` of
:mod:`orchestrator.pipeline.attempts`: ``{strategy, playbook, score, rank, outcome, reason, steps,
validation}``, each step a :meth:`StepResult.as_dict` of :mod:`orchestrator.repair.log`: ``{index, kind,
action, status, exit_status, duration_s, detail, commands: [{argv, exit_status, output, duration_s}]}``).

A step is named by its ``kind`` and ``action`` (what the playbook wrote); reading any other key showed
"—" for every step of every real attempt. Only a failed step's commands are shown in full: the output
of the steps that went fine is in the session files, and in a report it buried the one that did not.
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, code_block, duration, inline, table
from orchestrator.report.files import Loaded, as_dict, as_list, first
from orchestrator.report.generic import nested_block, scalar_bullets
from orchestrator.report.overview import mark, unreadable
from orchestrator.report.ranking import RANKING_KEYS, ranking_block
from orchestrator.report.validation import render_validation

MAX_EXCERPTS = 8
#: Commands of a failed step shown (its last ones: the failing command is the last it ran).
MAX_COMMANDS = 3
#: Step statuses (:data:`orchestrator.repair.log.StepStatus`) whose commands are not shown.
STEP_FINE = frozenset({"ok", "not_applicable"})
_OUTCOMES = {"validated": "validated", "validation_failed": "**VALIDATION FAILED**",
             "failed": "**STEP FAILED**", "skipped": "skipped (not applicable)"}
_EXCERPT_TITLE_KEYS = ("source", "label", "name", "probe", "path", "command", "file")
_EXCERPT_TEXT_KEYS = ("excerpt", "text", "output", "content", "lines", "value", "detail")


def diagnosis_section(loaded: Loaded) -> str:
    out = ["### Diagnosis", ""]
    if not loaded.ok:
        return "\n".join([*out, unreadable(loaded)])
    data = as_dict(loaded.data)
    out += [f"- **Cause:** {code(first(data, 'cause') or 'unknown')}",
            f"- **Confidence:** {_confidence(data.get('confidence'))}"]
    out += scalar_bullets(data, skip=("cause", "confidence"))
    out.append("")
    variables = as_dict(data.get("variables"))
    if variables:
        out += ["Variables the repair used:", "",
                table(["Name", "Value"], [[code(k, in_table=True), inline(v)] for k, v in variables.items()])]
    out.append(_excerpts(data.get("evidence")))
    out.append(_generated(as_list(data.get("generated"))))
    out.append(ranking_block(data))
    # The diagnostics' outputs are the evidence above: not twice.
    rest = nested_block(data, skip=("evidence", "variables", "generated", "diagnostics", *RANKING_KEYS))
    if rest:
        out += ["Other details:", "", rest]
    return "\n".join(out)


def _generated(generated: list[Any]) -> str:
    """The strategies generated from the evidence (not from a playbook), with what produced each."""
    if not generated:
        return ""
    rows = [[code(g.get("strategy"), in_table=True), inline(g.get("playbook"), 40),
             inline(g.get("cause"), 40), _confidence(g.get("confidence")), inline(g.get("description"), 400)]
            for g in map(as_dict, generated)]
    return "\n".join(["Strategies generated from the evidence:", "",
                      table(["Strategy", "Family", "Cause", "Confidence", "Evidence"], rows)])


def attempts_section(loaded: Loaded) -> str:
    out = ["### Repair attempts in the troubleshooting VM", ""]
    if not loaded.ok:
        return "\n".join([*out, unreadable(loaded)])
    data = loaded.data
    attempts = [as_dict(a) for a in as_list(data.get("attempts") if isinstance(data, dict) else data)]
    if not attempts:
        return "\n".join([*out, "_No strategy was tried (none applies to this diagnosis)._\n"])
    rows = [[str(a.get("rank") or n), code(a.get("strategy"), in_table=True), _score(a.get("score")),
             _outcome(a.get("outcome")), inline(a.get("reason"), 200)]
            for n, a in enumerate(attempts, start=1)]
    out.append(table(["#", "Strategy", "Score", "Outcome", "Reason"], rows))
    for n, attempt in enumerate(attempts, start=1):
        out.append(_attempt(n, attempt))
    return "\n".join(out)


def _attempt(number: int, attempt: dict[str, Any]) -> str:
    out = [f"#### Attempt {attempt.get('rank') or number}: {code(attempt.get('strategy'))} — "
           f"{_outcome(attempt.get('outcome'))}", ""]
    if attempt.get("playbook"):
        out.append(f"- **Playbook:** {code(attempt['playbook'])}")
    if attempt.get("reason"):
        out.append(f"- **Reason:** {inline(attempt['reason'], 1000)}")
    if attempt.get("description"):
        out.append(f"- **What it does:** {inline(attempt['description'], 1000)}")
    planned = as_list(attempt.get("planned"))
    if planned:
        out.append("- **Planned steps:** " + "; ".join(code(p, limit=300) for p in planned[:20]))
    out.append("")
    steps = [as_dict(s) for s in as_list(attempt.get("steps"))]
    if steps:
        out.append(table(["#", "Step", "What it does", "Status", "Exit", "Duration", "Detail"],
                         [_step_row(n, step) for n, step in enumerate(steps, start=1)]))
        out += [text for text in map(_step_output, steps) if text]
    elif attempt.get("outcome") not in {"skipped", "failed"}:
        out.append("_No steps recorded._\n")
    if "validation" in attempt:
        out += ["**Validation of this attempt:**", "", render_validation(attempt["validation"])]
    return "\n".join(out)


def _step_row(number: int, step: dict[str, Any]) -> list[str]:
    exit_status = step.get("exit_status")
    return [str(step.get("index") or number), code(step.get("kind"), in_table=True),
            code(step.get("action"), limit=200, in_table=True), mark(step.get("status")),
            inline(exit_status, 8) if exit_status is not None else "—", duration(step.get("duration_s")),
            inline(step.get("detail"), 300)]


def _step_output(step: dict[str, Any]) -> str:
    """The commands of a step that did not go fine, each with its argv, exit status and output."""
    if step.get("status") in STEP_FINE:
        return ""
    parts: list[str] = []
    commands = [as_dict(c) for c in as_list(step.get("commands"))]
    for command in commands[-MAX_COMMANDS:]:
        argv = " ".join(str(a) for a in as_list(command.get("argv")))
        parts += [f"Step {step.get('index') or '?'} ran {code(argv, limit=300)} "
                  f"(exit {inline(command.get('exit_status'), 8)}):", "",
                  code_block(command.get("output") or "(no output)")]
    if len(commands) > MAX_COMMANDS:
        parts.insert(0, f"_The last {MAX_COMMANDS} of its {len(commands)} commands:_\n")
    return "\n".join(parts)


def _excerpts(evidence: Any) -> str:
    if isinstance(evidence, dict):
        items: list[tuple[str, Any]] = list(evidence.items())
    else:
        items = []
        for n, item in enumerate(as_list(evidence), start=1):
            entry = as_dict(item)
            title = first(entry, *_EXCERPT_TITLE_KEYS) if entry else None
            text = first(entry, *_EXCERPT_TEXT_KEYS) if entry else item
            items.append((str(title or f"excerpt {n}"), text if text is not None else item))
    if not items:
        return "_No evidence excerpts recorded._\n"
    out = ["Evidence:", ""]
    for title, text in items[:MAX_EXCERPTS]:
        out += [f"**{inline(title, 200)}:**", "", code_block(text)]
    if len(items) > MAX_EXCERPTS:
        out.append(f"_{len(items) - MAX_EXCERPTS} more excerpts are in the session files._\n")
    return "\n".join(out)


def _confidence(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.0%}" if 0 <= value <= 1 else inline(value)
    return inline(value if value is not None else "unknown")


def _score(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}"
    return inline(value)


def _outcome(value: object) -> str:
    return _OUTCOMES.get(str(value), inline(value if value is not None else "unfinished", 40))
