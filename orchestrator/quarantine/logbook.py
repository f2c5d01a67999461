"""``QUARANTINE.md``: the human-readable log of quarantines and releases, kept on the target.

One Markdown section per event, newest last. Each section's heading is the whole event on one line
(when, what, which component, why), so ``grep '^##' QUARANTINE.md`` is the log one line per event; the
list below it has the detail, and ``manifest.json`` beside the moved files the exact record. That is the
reader's form beside the JSON: a file on the host itself, readable with no vmrepair installed (the host
may be the one that is broken), rather than a CLI rendering of the manifests. Every value from the
target or a caller (reasons, paths, unit states, probe summaries) is escaped
(:mod:`orchestrator.report.escape`) so it cannot add headings or break the document. The log is
rewritten whole through the agent (temp file, fsync, rename) with the hash read before as precondition,
so a concurrent writer makes the append fail instead of being lost. Past :data:`MAX_LOG_BYTES` the log
is moved aside and a new one begun.
"""

from __future__ import annotations

import posixpath

from orchestrator.agent.api import AgentApi
from orchestrator.errors import QuarantineError
from orchestrator.quarantine.manifest import QuarantineRecord
from orchestrator.report.escape import code, inline

HEADER = ("# vmrepair quarantine log\n\nComponents vmrepair isolated on this host, and their releases, "
          "newest last, one heading per event (`grep '^##'` lists them one per line). The "
          "`manifest.json` beside each quarantine's files is the exact record.\n")
#: How much of a reason or outcome the one-line heading carries (the list below has all of it).
HEADLINE_LIMIT = 160
MAX_LOG_BYTES = 4 * 1024 * 1024
LOG_MODE = 0o640


def quarantine_entry(record: QuarantineRecord) -> str:
    units = ", ".join(f"{code(u.unit)} (was {inline(u.unit_file_state or '?')}, "
                      f"{inline(u.active_state or '?')})" for u in record.units)
    lines = [
        f"## {inline(record.quarantined_at)}: quarantined {code(record.component)}: "
        f"{inline(record.reason, HEADLINE_LIMIT)}",
        "",
        f"- reason: {inline(record.reason)}",
        f"- moved to: {code(record.directory)}",
        f"- units stopped and disabled: {units or 'none'}",
        f"- files moved: {len(record.moved)}",
    ]
    if record.skipped:
        lines.append(f"- left in place (special files): {', '.join(code(p) for p in record.skipped)}")
    lines.append(f"- release: `vmrepair quarantine release {record.component}`")
    return "\n".join(lines) + "\n"


def release_entry(record: QuarantineRecord, *, released_at: str, restored: int, outcome: str) -> str:
    return "\n".join([
        f"## {inline(released_at)}: released {code(record.component)}: {inline(outcome, HEADLINE_LIMIT)}",
        "",
        f"- quarantined at {inline(record.quarantined_at)} from {code(record.directory)}",
        f"- files restored: {restored} of {len(record.moved)} (content, mode and owner verified)",
        f"- outcome: {inline(outcome)}",
    ]) + "\n"


def append_entry(agent: AgentApi, log_path: str, entry: str) -> None:
    """Append ``entry`` (a Markdown section) to the log at ``log_path``.

    Raises:
        QuarantineError: ``log_path`` is not a regular file.
        AgentFailedError: the log changed between reading and writing it.
        TransportError: the agent failed.
    """
    current = agent.manifest([log_path]).by_path().get(log_path)
    if current is not None and current.type != "file":
        raise QuarantineError(f"quarantine log {log_path} is a {current.type}, not a file",
                              remedy=f"move {log_path} away; vmrepair starts a new log")
    if current is not None and current.size > MAX_LOG_BYTES:
        stem, ext = posixpath.splitext(log_path)
        # The hash names the archive: unique per content, and no clock needed.
        agent.move_file(log_path, f"{stem}-{(current.sha256 or 'old')[:12]}{ext}")
        current = None
    if current is None:
        text, expect, meta = HEADER.encode(), None, (LOG_MODE, 0, 0)
    else:
        text = agent.read_file(log_path, max_bytes=MAX_LOG_BYTES)
        expect, meta = current.sha256, (current.mode, current.uid, current.gid)
    separator = b"" if text.endswith(b"\n\n") else (b"\n" if text.endswith(b"\n") else b"\n\n")
    mode, uid, gid = meta
    agent.write_file(log_path, text + separator + entry.encode(), mode=mode, uid=uid, gid=gid,
                     expect_sha256=expect)
