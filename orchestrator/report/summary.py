"""The top of the report, for the person paged at 3 a.m.: what broke, what was done, the result, how long
the repair took, how to undo it, and what to do next. Everything else is folded below it.

The undo is named as the command that does it (``vmrepair fixes rollback TX``) with the transaction id
the apply stage recorded, read from the component's outcome (``txn`` in session.json) or from
``apply-<component>.json`` (``txn_id``). An id that is not one :func:`new_txn_id` could have produced is
never written into a command a reader may paste into a root shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.report.escape import code, duration, inline
from orchestrator.report.files import SessionFiles, as_dict, as_list
from orchestrator.report.overview import status_label
from orchestrator.session.evidence import Evidence
from orchestrator.state.transactions import TXN_ID_RE
from orchestrator.timestamps import parse_timestamp

#: Issues and changed paths named in the summary; the rest are counted ("and 3 more").
MAX_LISTED = 5
#: Apply results after which the transaction's backup is still the way back.
_LIVE = frozenset({"applied", "committed", "pending_reboot", "verified"})


@dataclass(frozen=True)
class Applied:
    """One fix transaction of the session, as the report needs it."""

    component: str
    txn: str
    #: ``applied`` (still on the target), ``rolled_back``, ``rollback_failed``, ``aborted`` ...
    status: str
    backup: str

    @property
    def is_live(self) -> bool:
        return self.status in _LIVE

    @property
    def rollback(self) -> str:
        """The command that undoes it ('' when the id is not a transaction id)."""
        return f"vmrepair fixes rollback {self.txn}" if TXN_ID_RE.fullmatch(self.txn) else ""


def applied_fixes(meta: dict[str, Any], files: SessionFiles) -> list[Applied]:
    """The fix transactions of the session, one per component that reached the apply stage."""
    found: dict[str, Applied] = {}
    for detail in map(as_dict, as_list(meta.get("components"))):
        component = str(detail.get("component") or "")
        if component in found:
            continue
        apply = as_dict(files.stage(Evidence.APPLY, component).data)
        txn = str(detail.get("txn") or apply.get("txn_id") or "")
        if txn:
            status = str(apply.get("status") or ("applied" if detail.get("status") in _LIVE | {"repaired"}
                                                 else "unknown"))
            backup = str(detail.get("backup") or apply.get("backup_dir") or "")
            found[component] = Applied(component, txn, status, backup)
    return list(found.values())


def summary_section(meta: dict[str, Any], files: SessionFiles) -> str:
    fixes = applied_fixes(meta, files)
    lines = ["## Summary", "", "- **What broke:**" + _broke(meta),
             "- **What was done:**" + _done(meta, files),
             f"- **Result:** {status_label(meta.get('status') or 'running')}" + _result(meta),
             f"- **Time to repair:** {time_to_repair(meta)}", "- **Rollback:** " + _rollback(meta, fixes),
             f"- **Target:** {code(meta.get('target') or 'unknown')}; "
             f"**session directory:** {code(str(files.dir), limit=500)}", "",
             f"**Next step:** {next_steps(meta, fixes)}", ""]
    return "\n".join(lines)


def time_to_repair(meta: dict[str, Any]) -> str:
    """From the start of the run (detection) to its end (the fix verified on the target)."""
    start, end = (parse_timestamp(v) if isinstance(v, str) else None
                  for v in (meta.get("started_at"), meta.get("finished_at")))
    if start is None:
        return "unknown (no start recorded)"
    if end is None:
        return "not finished"
    return f"{duration((end - start).total_seconds())} (detection to the end of the run)"


def _broke(meta: dict[str, Any]) -> str:
    found = [as_dict(i) for i in as_list(meta.get("issues"))]
    if not found:
        return " nothing: every watched component passed its probes" if meta.get("status") == "healthy" \
            else " no issue recorded"
    rows = [f"  - {code(i.get('component'))} {inline(i.get('kind'), 40)} ({inline(i.get('severity'), 20)}): "
            f"{inline(i.get('summary'), 300)}" for i in found[:MAX_LISTED]]
    more = [f"  - and {len(found) - MAX_LISTED} more (see *Issues found*)"] if len(found) > MAX_LISTED else []
    return "\n" + "\n".join(rows + more)


def _done(meta: dict[str, Any], files: SessionFiles) -> str:
    details = [as_dict(d) for d in as_list(meta.get("components"))]
    if not details:
        return " nothing" + (": nothing needed it" if meta.get("status") == "healthy" else "")
    rows = []
    for detail in details:
        component = str(detail.get("component") or "")
        label = "REPORTED (never repaired by design)" if detail.get("report_only") is True \
            else status_label(detail.get("status") or "running")
        line = (f"  - {code(component or '(unnamed)')}: {label} — "
                f"{inline(detail.get('summary') or 'no outcome recorded', 400)}")
        changed = _changed(files, component) if detail.get("strategy") else ""
        rows.append(line + (f"; changed {changed}" if changed else ""))
    return "\n" + "\n".join(rows)


def _changed(files: SessionFiles, component: str) -> str:
    """What the fix package changes, as short names: paths and unit actions."""
    package = files.stage(Evidence.FIX_PACKAGE, component)
    ops = [as_dict(op) for op in as_list(as_dict(package.data).get("operations"))]
    names = []
    for op in ops:
        kind = str(op.get("op") or op.get("action") or "?")
        if kind == "unit":
            names.append(code(f"systemctl {op.get('action', '?')} {op.get('unit', '?')}", limit=200))
        elif kind == "daemon_reload":
            names.append(code("systemctl daemon-reload"))
        else:
            names.append(f"{code(op.get('path') or op.get('unit') or '?', limit=200)} ({inline(kind, 30)})")
    more = [f"and {len(names) - MAX_LISTED} more"] if len(names) > MAX_LISTED else []
    return ", ".join(names[:MAX_LISTED] + more)


def _result(meta: dict[str, Any]) -> str:
    status = meta.get("status")
    if status == "repaired":
        return " — validated in a troubleshooting VM, applied, and verified on the target"
    if status == "pending_reboot":
        return " — applied and verified as far as possible; waiting for the target's reboot"
    if meta.get("dry_run"):
        return " — dry run: nothing was applied"
    return ""


def _rollback(meta: dict[str, Any], fixes: list[Applied]) -> str:
    if not fixes:
        return "nothing to roll back: nothing was applied to the target" if meta.get("status") else "—"
    parts = []
    for fix in fixes:
        where = f" ({code(fix.component)})" if len(fixes) > 1 else ""
        if not fix.rollback:
            parts.append(f"transaction {code(fix.txn, limit=80)}{where} is not a transaction id; "
                         "`vmrepair fixes list` shows the real ones")
        elif fix.is_live:
            parts.append(f"`{fix.rollback}`{where}")
        else:
            parts.append(f"none needed: transaction `{fix.txn}`{where} ended {inline(fix.status, 30)} "
                         f"(`vmrepair fixes show {fix.txn}`)")
    return "; ".join(parts)


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
    "interrupted": (
        "This run was killed before it finished (its process or the host died) and was closed at the next "
        "start: the summary names the stage it was in and what was cleaned up. Its troubleshooting VM is "
        "gone; a fix it had begun to apply was finished or rolled back by the start-up recovery (`vmrepair "
        "fixes list`). Nothing needs undoing by hand: the next `vmrepair run` (or daemon check) starts "
        "afresh from detection. If the summary says a VM was not destroyed, run `vmrepair vm reap`."),
    "running": (
        "This session has not finished: vmrepair is still running or was killed. If no vmrepair "
        "process is running, treat it as an error and look at the last stage in the timeline."),
}


def next_steps(meta: dict[str, Any], fixes: list[Applied]) -> str:
    """What the reader should do now, by session status (unknown statuses read as unfinished)."""
    status = str(meta.get("status") or "running")
    live = [f for f in fixes if f.is_live and f.rollback]
    undo = " ".join(f"To undo the change to {code(f.component or '(unnamed)')}, run `{f.rollback}` (it "
                    f"restores the files backed up in {code(f.backup, limit=300)} and verifies them)."
                    for f in live)
    if not undo:
        # An older session records no transaction: the backup is still the way back.
        backups = [as_dict(d).get("backup") for d in as_list(meta.get("components"))]
        undo = " ".join(f"The files before the change are backed up in {code(b, limit=300)} "
                        "(`vmrepair fixes list` names its transaction)." for b in backups if b)
    if status == "repaired":
        return ("The fix was applied to the target and validated there. Keep an eye on the repaired "
                "components for a while. " + undo).rstrip()
    if status == "pending_reboot":
        return ("The fix is applied and waits for the target's reboot (its maintenance window, or the "
                "operator); it is verified after the boot. " + undo).rstrip()
    if status == "not_repaired":
        return _not_repaired(meta, fixes, live, undo)
    return _NEXT_STEPS.get(status, _NEXT_STEPS["running"])


def _not_repaired(meta: dict[str, Any], fixes: list[Applied], live: list[Applied], undo: str) -> str:
    if meta.get("dry_run"):
        return ("Dry run: a validated fix (if any, see the fix package below) was NOT applied. "
                "Review it, then re-run without `--dry-run` to apply it.")
    text = ("The target still has the problem. Start from the diagnosis and the failed attempts "
            "below; the files captured from the target are in the session's `capture/` directory.")
    if live:
        return f"{text} A change was applied to the target and is still there. {undo}"
    if fixes:
        shown = fixes[0].txn if fixes[0].rollback else "ID"
        return (f"{text} A change was attempted on the target and did not stay (see *Apply and "
                f"backup*): `vmrepair fixes show {shown}`.")
    return text + " Nothing was applied to the target."
