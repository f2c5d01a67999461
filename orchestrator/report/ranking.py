"""The ranking part of a component's diagnosis section: the fault's signature, the strategies in the
order they were to be tried with *why* each ranked there, and the concordance of their record.

Read from ``diagnosis-<component>.json``: ``signature`` (:meth:`FaultSignature.as_dict`), ``ranking``
(a list of :meth:`RankedStrategy.as_dict`: ``strategy, score, effectiveness, match, success_rate,
lossy, last_resort, why: {level, successes, tries, prior_alpha, prior_beta, mean}, why_text``) and
``concordance`` (per strategy, ``vm``/``target``/``reboot`` as ``[successes, tries]`` for exactly this
fault). Sessions written before signatures existed have none of them: the section then shows nothing.
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, inline, table
from orchestrator.report.files import as_dict, as_list

#: Keys of the diagnosis file this module renders (the generic "other details" skip them).
RANKING_KEYS = ("signature", "ranking", "concordance")
_STAGES = (("vm", "Validated in VM"), ("target", "Verified on target"), ("reboot", "After reboot"))


def ranking_block(data: dict[str, Any]) -> str:
    """Markdown for the signature, ranking and concordance in ``data`` ("" when it has none)."""
    return "\n".join(part for part in (_signature(as_dict(data.get("signature"))),
                                       _ranking(as_list(data.get("ranking"))),
                                       _concordance(as_list(data.get("concordance")))) if part)


def _signature(signature: dict[str, Any]) -> str:
    if not signature:
        return ""
    label = " / ".join(str(signature.get(k, "?")) for k in ("component_kind", "issue_kind", "cause"))
    os_release = signature.get("os_release") or "an unknown OS"
    return (f"- **Fault signature:** {code(label)} on {inline(os_release)}"
            f" (fine {code(signature.get('fine'))}, medium {code(signature.get('medium'))}); evidence "
            f"pattern {code(signature.get('evidence_pattern'), limit=200)}\n")


def _ranking(ranking: list[Any]) -> str:
    if not ranking:
        return ""
    rows = []
    for n, item in enumerate(map(as_dict, ranking), start=1):
        rows.append([str(n), code(item.get("strategy"), in_table=True), _number(item.get("score"), 3),
                     _number(item.get("effectiveness"), 2), _number(item.get("match"), 2),
                     _number(item.get("success_rate"), 2), why(item)])
    return "\n".join(["Strategies in the order they were to be tried, and why:", "",
                      table(["#", "Strategy", "Score", "Effectiveness", "Match", "Posterior", "Why"], rows)])


def why(item: dict[str, Any]) -> str:
    """``fine 3/4 ok, prior Beta(2.8, 1.2), mean 0.73`` (:meth:`Explanation.describe`), plus the ordering
    rule that overrode the score, if any."""
    text = str(item.get("why_text") or "—")
    if item.get("lossy"):
        text += "; loses data: after every strategy that keeps it"
    elif item.get("last_resort"):
        text += "; last resort: after every other strategy"
    return inline(text, 200)


def _concordance(rows: list[Any]) -> str:
    cells = [[code(item.get("strategy"), in_table=True), *(_tally(item.get(stage)) for stage, _ in _STAGES)]
             for item in map(as_dict, rows)]
    if not any(cell != "—" for row in cells for cell in row[1:]):
        return ""   # no strategy has a record for this fault yet: a table of dashes says nothing
    return "\n".join(["What the record says for this fault (successes/tries):", "",
                      table(["Strategy", *(title for _, title in _STAGES)], cells)])


def _tally(value: object) -> str:
    pair = as_list(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair) or not pair[1]:
        return "—"
    return f"{pair[0]}/{pair[1]}"


def _number(value: object, digits: int) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return inline(value)
