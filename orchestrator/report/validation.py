"""Rendering a ValidationReport (``ValidationReport.as_dict()``) as a layer table and a check table."""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import duration, inline, table
from orchestrator.report.files import as_dict, as_list

#: Failed check rows shown per validation; the stability layer alone can have one per probe.
MAX_CHECK_ROWS = 120

_LAYER_TITLES = {"resolved": "Issue resolved", "stable": "Stable under load",
                 "no_regressions": "No regressions", "core_features": "Core features"}


def render_validation(data: Any) -> str:
    """Layers (with verdict) and every check, failures in bold; empty input says so."""
    report = as_dict(data)
    layers = [as_dict(layer) for layer in as_list(report.get("layers"))]
    if not layers:
        return "_No validation result recorded._\n"
    verdict = "**PASSED**" if report.get("passed") is True else "**FAILED**"
    layer_rows = []
    check_rows = []
    for layer in layers:
        name = str(layer.get("name", "?"))
        checks = [as_dict(c) for c in as_list(layer.get("checks"))]
        passed = sum(1 for c in checks if c.get("ok") is True)
        status = str(layer.get("status") or ("passed" if layer.get("passed") else "failed"))
        layer_rows.append([inline(_LAYER_TITLES.get(name, name), 60), _status(status),
                           f"{passed}/{len(checks)}", duration(layer.get("duration_s")),
                           inline(layer.get("detail"), 400)])
        for check in checks:
            ok = check.get("ok") is True
            check_rows.append([inline(_LAYER_TITLES.get(name, name), 60), inline(check.get("name"), 200),
                               "ok" if ok else "**FAILED**", duration(check.get("duration_s")),
                               inline(check.get("detail"), 400 if not ok else 200)])
    out = [f"Verdict: {verdict}", "", table(["Layer", "Result", "Checks passed", "Duration", "Detail"],
                                             layer_rows)]
    failed = [row for row in check_rows if row[2] != "ok"]
    if failed:
        # Only the failures: the reader wants the reason, not the list of what went fine.
        out.append(table(["Layer", "Check", "Result", "Duration", "Detail"], failed[:MAX_CHECK_ROWS]))
        if len(failed) > MAX_CHECK_ROWS:
            out.append(f"_{len(failed) - MAX_CHECK_ROWS} more failed checks are in the session files._\n")
    passing = len(check_rows) - len(failed)
    if passing:
        out.append(f"_{passing} passing checks are listed in the session files._\n")
    return "\n".join(out)


def _status(status: str) -> str:
    if status == "passed":
        return "passed"
    return f"**{inline(status, 20).upper()}**"
