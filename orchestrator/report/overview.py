"""Session-wide sections of the report: header, what to do next, timeline, issues found."""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, duration, inline, table, timestamp
from orchestrator.report.files import Loaded, SessionFiles, as_dict, as_list, first
from orchestrator.report.generic import evidence_block

NOT_REACHED = "_Not reached._\n"
#: At most this many evidence entries per issue (each is a capped block).
MAX_EVIDENCE = 8

_STATUS_LABEL = {
    "healthy": "HEALTHY", "repaired": "REPAIRED", "not_repaired": "NOT REPAIRED",
    "not_reproduced": "NOT REPRODUCED", "error": "ERROR", "running": "UNFINISHED",
    "pending_reboot": "PENDING REBOOT", "interrupted": "INTERRUPTED",
}


def unreadable(loaded: Loaded) -> str:
    return NOT_REACHED if loaded.missing else f"_Could not be shown: {inline(loaded.error)}._\n"


def status_label(status: object) -> str:
    return _STATUS_LABEL.get(str(status), inline(str(status).upper() or "UNKNOWN", 40))


def mark(status: object) -> str:
    """A stage/step/check status, with failures in bold so they stand out in a table."""
    text = inline(status, 40)
    return f"**{text.upper()}**" if str(status) in {"failed", "error", "validation_failed"} else text


def header(meta: dict[str, Any], files: SessionFiles) -> str:
    """Title and status line (the summary of the run, as the pipeline wrote it)."""
    session_id = meta.get("id") or files.dir.name
    status = meta.get("status") or "unknown"
    summary = inline(meta.get("summary") or "no summary recorded", 1500)
    lines = [f"# vmrepair report: session {code(session_id, limit=64)}", "",
             f"**Status: {status_label(status)}** — {summary}", ""]
    if meta.get("dry_run"):
        lines += ["**Dry run:** nothing was to be applied to the target.", ""]
    return "\n".join(lines)


def times(meta: dict[str, Any]) -> str:
    """Start and end of the run (for the timeline's fold)."""
    finished = timestamp(meta["finished_at"]) if meta.get("finished_at") else "not yet"
    return f"Started {timestamp(meta.get('started_at'))}, finished {finished}.\n"


def timeline(files: SessionFiles) -> str:
    loaded = files.load("timeline")
    if not loaded.ok:
        return unreadable(loaded)
    rows = [[inline(e.get("name"), 60), timestamp(e.get("started_at")), duration(e.get("duration_s")),
             mark(e.get("status")), inline(e.get("detail"), 300)]
            for e in map(as_dict, as_list(loaded.data))]
    return table(["Stage", "Started", "Duration", "Status", "Detail"], rows) if rows else "_Empty._\n"


def issues(meta: dict[str, Any], files: SessionFiles) -> str:
    detect = files.load("detect")
    detected = as_dict(detect.data)
    found = as_list(meta.get("issues")) or as_list(detected.get("issues"))
    out: list[str] = []
    results = [as_dict(r) for r in as_list(detected.get("results"))]
    if results:
        failed = sum(1 for r in results if r.get("ok") is False and not r.get("unavailable"))
        unavailable = [r for r in results if r.get("unavailable")]
        out += [f"{len(results)} probes ran on the target: {len(results) - failed - len(unavailable)} "
                f"passed, {failed} failed, {len(unavailable)} could not run.", ""]
        for r in unavailable:
            out.append(f"- could not run: {code(r.get('probe'))}: {inline(r.get('summary'))}")
        out += [""] if unavailable else []
    if not found:
        if detect.missing and meta.get("issues") is None:
            body = NOT_REACHED
        elif detect.ok or meta.get("issues") is not None:
            body = "_No issue._\n"
        else:
            body = unreadable(detect)
        return "\n".join([*out, body])
    rows = [[str(n), code(i.get("component"), in_table=True), inline(i.get("kind"), 40),
             inline(i.get("severity"), 20), code(i.get("subject"), in_table=True), inline(i.get("summary"))]
            for n, i in enumerate(map(as_dict, found), start=1)]
    out.append(table(["#", "Component", "Kind", "Severity", "Subject", "Summary"], rows))
    for n, issue in enumerate(map(as_dict, found), start=1):
        out.append(_evidence(n, issue))
    return "\n".join(out)


def _evidence(number: int, issue: dict[str, Any]) -> str:
    evidence = as_dict(issue.get("evidence"))
    probe = first(issue, "probe") or ""
    lines = [f"### Issue {number}: {code(issue.get('id') or probe)}", "",
             f"Found by probe {code(probe)}.", ""]
    if not evidence:
        return "\n".join([*lines, "_No evidence recorded._", ""])
    return "\n".join([*lines, evidence_block(evidence, MAX_EVIDENCE)])
