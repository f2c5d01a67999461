"""Session-wide sections of the report: header, what to do next, timeline, issues found."""

from __future__ import annotations

from typing import Any

from orchestrator.report.escape import code, code_block, duration, inline, table, timestamp
from orchestrator.report.files import Loaded, SessionFiles, as_dict, as_list, first

NOT_REACHED = "_Not reached._\n"
#: At most this many evidence entries per issue (each is a capped block).
MAX_EVIDENCE = 8

_STATUS_LABEL = {
    "healthy": "HEALTHY", "repaired": "REPAIRED", "not_repaired": "NOT REPAIRED",
    "not_reproduced": "NOT REPRODUCED", "error": "ERROR", "running": "UNFINISHED",
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
    session_id = meta.get("id") or files.dir.name
    status = meta.get("status") or "unknown"
    summary = inline(meta.get("summary") or "no summary recorded", 1500)
    finished = timestamp(meta["finished_at"]) if meta.get("finished_at") else "not yet"
    lines = [f"# vmrepair report: session {code(session_id, limit=64)}", "",
             f"**Status: {status_label(status)}** — {summary}", "",
             f"- **Target:** {code(meta.get('target') or 'unknown')}",
             f"- **Started:** {timestamp(meta.get('started_at'))}",
             f"- **Finished:** {finished}"]
    if meta.get("dry_run"):
        lines.append("- **Dry run:** yes, nothing was to be applied to the target")
    lines.append(f"- **Session directory:** {code(str(files.dir), limit=500)}")
    return "\n".join(lines) + "\n"


_NEXT_STEPS = {
    "healthy": "Nothing to do: every watched component passed its probes. Nothing was changed on the target.",
    "not_reproduced": (
        "The fault did not reproduce in a troubleshooting VM, so no fix was tried and nothing was "
        "applied. It may depend on something that was not captured (load, network, timing): "
        "investigate on the target, starting from the issues below."),
    "error": (
        "vmrepair stopped with an error (see the summary and the failed stage in the timeline). "
        "The target was not changed unless *Apply and backup* below says so. Re-run with "
        "`--debug`; every event is in `evidence.jsonl`."),
    "running": (
        "This session has not finished: vmrepair is still running or was killed. If no vmrepair "
        "process is running, treat it as an error and look at the last stage in the timeline."),
}


def next_steps(meta: dict[str, Any]) -> str:
    """What the reader should do now, by session status (unknown statuses read as unfinished)."""
    status = str(meta.get("status") or "running")
    details = [as_dict(d) for d in as_list(meta.get("components"))]
    backups = ", ".join(code(d["backup"], limit=300) for d in details if d.get("backup"))
    if status == "repaired":
        text = ("The fix was applied to the target and validated there. Keep an eye on the repaired "
                "components for a while.")
        return text + (f" To undo it, restore the pre-change files from {backups}." if backups else "")
    if status == "not_repaired" and meta.get("dry_run"):
        return ("Dry run: a validated fix (if any, see the fix package below) was NOT applied. "
                "Review it, then re-run without `--dry-run` to apply it.")
    if status == "not_repaired":
        text = ("The target still has the problem. Start from the diagnosis and the failed attempts "
                "below; the files captured from the target are in the session's `capture/` directory.")
        return text + (f" A change was attempted on the target: see *Apply and backup* for whether it "
                       f"was rolled back; the backup is in {backups}." if backups else
                       " Nothing was applied to the target.")
    return _NEXT_STEPS.get(status, _NEXT_STEPS["running"])


def timeline(files: SessionFiles) -> str:
    loaded = files.load("timeline")
    if not loaded.ok:
        return "## Timeline\n\n" + unreadable(loaded)
    rows = [[inline(e.get("name"), 60), timestamp(e.get("started_at")), duration(e.get("duration_s")),
             mark(e.get("status")), inline(e.get("detail"), 300)]
            for e in map(as_dict, as_list(loaded.data))]
    body = table(["Stage", "Started", "Duration", "Status", "Detail"], rows) if rows else "_Empty._\n"
    return "## Timeline\n\n" + body


def issues(meta: dict[str, Any], files: SessionFiles) -> str:
    detect = files.load("detect")
    detected = as_dict(detect.data)
    found = as_list(meta.get("issues")) or as_list(detected.get("issues"))
    out = ["## Issues found", ""]
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
    for key in list(evidence)[:MAX_EVIDENCE]:
        lines += [f"**{inline(key, 80)}:**", "", code_block(evidence[key])]
    if len(evidence) > MAX_EVIDENCE:
        lines.append(f"_{len(evidence) - MAX_EVIDENCE} more evidence entries are in the session files._\n")
    return "\n".join(lines)
