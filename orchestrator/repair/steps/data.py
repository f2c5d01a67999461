"""Steps on data through the agent: ``jsonl_repair`` and ``reduce_logs``.

Neither deletes data: a JSONL repair keeps every good line (bad ones go to the agent's quarantine file)
and log reduction compresses (a verified copy before truncating) or truncates *log files only*, found
under the watched components' ``log_paths``.
"""

from __future__ import annotations

import fnmatch
import posixpath

from orchestrator.playbooks.model import JsonlRepairStep, ReduceLogsStep
from orchestrator.repair.context import RepairContext
from orchestrator.repair.paths import is_within, normalize, within_any
from orchestrator.repair.steps.io import StepIO

#: Files under a log directory that are not plain text logs: journald's binary store (journald manages
#: its own size), login accounting databases, and logs that are already compressed.
SKIPPED_LOGS = ("/var/log/journal/*", "*/wtmp", "*/btmp", "*/lastlog", "*/faillog",
                "*.gz", "*.xz", "*.zst", "*.bz2", "*.zip")


def run_jsonl_repair(step: JsonlRepairStep, ctx: RepairContext, io: StepIO) -> str:
    """Repair the component's JSONL logs (or those named, which must be among them) with the agent.

    Recorded as a replayable ``jsonl_repair`` operation: the target's file is repaired in place by the
    same agent code. Copying the VM's file would add the lines the VM's own service wrote while it was
    validated to the target's data.

    Raises:
        StepNotApplicableError: the component has no such log, or every log is already sound.
        RepairStepError: a named path is not one of the component's jsonl_logs (refused).
        TransportError: the agent failed (the attempt fails).
    """
    known = list(ctx.component.jsonl_logs)
    logs = list(known) if step.all_logs else []
    values = ctx.values()
    for template in step.paths:
        path = normalize(template.render(values))
        if path is None or path not in known:
            raise io.fail(f"refusing {template.raw!r}: not a jsonl log of {ctx.component.name}")
        if path not in logs:
            logs.append(path)
    if not logs:
        raise io.not_applicable(f"{ctx.component.name} has no jsonl logs")
    repaired = []
    for path in logs:
        report = ctx.agent.jsonl_check(path)
        if report.ok:
            io.note(f"{path}: sound ({report.good_lines} lines)" if report.exists else f"{path}: absent")
            continue
        result = ctx.agent.jsonl_repair(path)
        io.replay.append({"op": "jsonl_repair", "path": path})
        io.note(f"{path}: kept {result.kept}, repaired {result.repaired}, quarantined {result.quarantined} "
                f"line(s) to {result.quarantine_path}; backup {result.backup_path}")
        repaired.append(path)
    if not repaired:
        raise io.not_applicable(f"{', '.join(logs)}: no corrupt lines to repair")
    return f"repaired {', '.join(repaired)}"


def run_reduce_logs(step: ReduceLogsStep, ctx: RepairContext, io: StepIO) -> str:
    """Rotate every log file of at least ``min_bytes`` under the watched components' log_paths.

    With a mount point as the issue's subject, only files below it (lexically) are rotated. Each
    rotation is recorded as a replayable ``rotate_log`` operation: the VM holds placeholders of big
    files, so the package must rotate the real file on the target, not copy the VM's.

    Raises:
        StepNotApplicableError: no log_paths are watched, or no log file is big enough.
        TransportError: the agent failed (the attempt fails).
    """
    roots = sorted({r for c in ctx.watched for p in c.log_paths if (r := normalize(p)) is not None})
    if not roots:
        raise io.not_applicable("no watched component declares log_paths")
    mount = normalize(ctx.issue.subject)
    seen: set[str] = set()
    freed = 0
    for big in ctx.agent.big_files(roots, min_bytes=step.min_bytes, limit=step.limit):
        path = normalize(big.path)
        if path is None or path in seen:
            continue
        seen.add(path)
        if not within_any(path, roots):
            # The agent must only answer inside the roots; never act on anything else.
            io.note(f"ignored {big.path!r}: outside log_paths")
            continue
        if (mount is not None and not is_within(path, mount)) or _skipped(path):
            continue
        # A placeholder's content in the VM is synthetic (its real data stayed on the target), so
        # compressing it would only burn minutes of emulated CPU (2 GB hit the step deadline under
        # TCG). Free its space the cheap way here; the replayed op compresses the real file.
        local_method = "truncate" if path in ctx.placeholders else step.method
        result = ctx.agent.rotate_log(path, method=local_method)
        freed += result.freed_bytes
        io.replay.append({"op": "rotate_log", "path": path, "method": step.method})
        io.note(f"{step.method} {path}: freed {result.freed_bytes} bytes"
                + (f", archive {result.archive}" if result.archive else ""))
    if not io.replay:
        raise io.not_applicable(f"no log file of {step.min_bytes} bytes or more under {', '.join(roots)}")
    done = "compressed" if step.method == "compress" else "truncated"
    return f"{done} {len(io.replay)} log(s), freed {freed} bytes"


def _skipped(path: str) -> bool:
    name = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)
               for pattern in SKIPPED_LOGS)
