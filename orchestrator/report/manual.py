"""The *Manual steps* section: when no strategy validated, what a person can do next, derived from what
was tried (each strategy's description says which evidence produced it, its planned steps are concrete
commands) and from the steps the attempt budget left (``manual_steps`` of the component's outcome)."""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, inline
from orchestrator.report.files import Loaded, as_dict, as_list

#: Strategies listed (the rest are in the attempts table above).
MAX_LISTED = 8
#: Planned steps listed per strategy.
MAX_STEPS = 12
_TRIED = {"failed": "its step failed", "validation_failed": "it ran, but validation failed",
          "skipped": "it did not apply here"}


def manual_steps_section(attempts: Loaded, detail: dict[str, Any]) -> str:
    """'' when a strategy validated (or nothing was attempted and the outcome names no manual step)."""
    tried = [as_dict(a) for a in as_list(attempts.data)] if attempts.ok else []
    if any(a.get("outcome") == "validated" for a in tried):
        return ""
    given = [inline(s, 600) for s in as_list(detail.get("manual_steps"))]
    if not tried and not given:
        return ""
    out = ["### Manual steps", ""]
    if tried:
        out += ["No strategy repaired this in the troubleshooting VM. What was tried, best first, with the "
                "evidence that suggested it; the steps are the ones a person would run on the target "
                "(check each against the evidence first: in the VM they did not validate):", ""]
        for attempt in tried[:MAX_LISTED]:
            out += _strategy(attempt)
        if len(tried) > MAX_LISTED:
            out.append(f"- … and {len(tried) - MAX_LISTED} more in the attempts above")
        out.append("")
    out += [f"- {step}" for step in given]
    out += ["- after a change by hand, run `vmrepair detect` to see whether the issue is gone", ""]
    return "\n".join(out)


def _strategy(attempt: dict[str, Any]) -> list[str]:
    outcome = str(attempt.get("outcome") or "")
    why = _TRIED.get(outcome, inline(outcome or "not finished", 40))
    reason = f" ({inline(attempt.get('reason'), 300)})" if attempt.get("reason") else ""
    lines = [f"1. {code(attempt.get('strategy'))}: {why}{reason}."]
    if attempt.get("description"):
        lines.append(f"   {inline(attempt['description'], 600)}")
    planned = as_list(attempt.get("planned"))
    lines += [f"   - {code(step, limit=400)}" for step in planned[:MAX_STEPS]]
    return lines
