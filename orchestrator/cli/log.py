"""`vmrepair log verify|repair [FILE]`: check and repair JSON-lines files on this machine: the audit
log, session evidence, any application's ``*.jsonl``. Without FILE: the audit log (``audit.path``).

``vmrepair log verify [FILE] [--audit] [--json]`` exits with

==  ====================================================================================================
0   every line is a JSON object; for an audit log every line is a well-formed record and the hash
    chain holds (breaks that a later ``chain_break`` record acknowledges are listed, and pass)
20  torn tail: the last line(s) are incomplete or unparsable, or the last line has no newline
21  corruption in the middle: bad lines followed by good ones (not JSON, NUL bytes, invalid UTF-8,
    a line over 16 MiB, in an audit log a line that is not a record)
22  broken hash chain: an audit record's seq or prev does not follow from the record before
23  the file is missing or unreadable
==  ====================================================================================================

When several apply the first in the order 23, 22, 21, 20 wins. ``--audit`` checks the file as an
audit log; without it the format is recognised from the first record (``seq`` and ``prev`` keys).

``vmrepair log repair [FILE] [--audit] [--json]`` backs the file up, keeps good lines, repairs simple
damage, quarantines the rest, appends a ``chain_break`` record to an audit log whose chain broke, or
restores a missing or empty file from its newest good rotation; it prints what it did and verifies the
result. Every byte read ends up in the repaired file or in the quarantine: a line holding several
objects and garbage becomes one record per object, and each piece of garbage a ``fragment`` entry of
the quarantine (see :mod:`orchestrator.jsonl.repairer`). Exit 0 when the result verifies, else the
verify code above; 14 when it could not repair (the message names the file and the remedy; the file
is then unchanged): among others a file with nothing good to keep, and a path through a symlinked
directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.app import App
from orchestrator.cli.output import emit_json, out_console

if TYPE_CHECKING:
    from orchestrator.jsonl import RepairReport, VerifyReport

#: Problems and chain breaks printed for people; --json lists up to a thousand.
SHOWN = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    log = sub.add_parser("log", help="verify or repair a JSON-lines file (default: the audit log)")
    lsub = log.add_subparsers(dest="log_cmd", required=True, metavar="{verify,repair}")
    for verb, helptext, handler in (
        ("verify", "check every line (and an audit log's hash chain); exit 0 only when all is well",
         cmd_verify),
        ("repair", "back up, keep good lines, quarantine bad ones, restore a missing file", cmd_repair),
    ):
        parser = lsub.add_parser(verb, help=helptext)
        parser.add_argument("file", nargs="?", type=Path, help="the file (default: audit.path of the config)")
        parser.add_argument("--audit", action="store_true",
                            help="treat it as an audit log (record format and hash chain)")
        parser.set_defaults(handler=handler)


def _target(app: App, args: argparse.Namespace) -> tuple[Path, bool | None]:
    if args.file is None:
        return app.settings.audit.path, True
    return args.file, True if args.audit else None


def cmd_verify(app: App, args: argparse.Namespace) -> int:
    """Raises: nothing of its own: every finding is an exit code (see the module docstring)."""
    from orchestrator.jsonl import verify  # imported when used: `vmrepair --help` stays fast

    path, audit = _target(app, args)
    report = verify(path, audit=audit)
    if args.json:
        emit_json(report.as_dict())
    else:
        _print_verify(report)
    return report.exit_code


def cmd_repair(app: App, args: argparse.Namespace) -> int:
    """Raises: AuditError: the file cannot be repaired (names the file and the remedy)."""
    from orchestrator.jsonl import repair, verify

    path, audit = _target(app, args)
    done = repair(path, audit=audit)
    after = verify(path, audit=True if done.audit else audit)
    if args.json:
        emit_json({"repair": done.as_dict(), "verify": after.as_dict()})
    else:
        _print_repair(done)
        _say(f"verify after repair: {after.status}" + ("" if after.ok else f" ({after.summary()})"))
    return after.exit_code


def _say(text: str) -> None:
    out_console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


def printable(text: str) -> str:
    """``text`` with the bytes of an undecodable file name (``os.fsdecode``'s lone surrogates) shown
    as ``\\xff`` escapes: printing a surrogate raises UnicodeEncodeError."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _print_verify(report: VerifyReport) -> None:
    _say(f"{report.status}: {report.summary()}")
    for problem in report.problems[:SHOWN]:
        where = "torn tail" if problem.in_tail else "middle"
        _say(f"  line {problem.line} (byte {problem.offset}) {problem.kind}, {where}: {problem.reason}")
    for brk in report.chain_breaks[:SHOWN]:
        _say(f"  chain broken at {brk.describe()}")
    for brk in report.acknowledged_breaks[:SHOWN]:
        _say(f"  acknowledged chain break at {brk.describe()}")
    hidden = max(0, len(report.problems) - SHOWN) + max(0, report.chain_break_count - SHOWN)
    if hidden or len(report.problems) < report.middle_problems + report.tail_problems:
        _say("  ... more: see --json (lists up to 1000 of each)")
    if report.remedy:
        _say(f"remedy: {report.remedy}")
    elif not report.ok:
        _say(f"remedy: `vmrepair log repair {report.path}` (backs the file up first)")


def _print_repair(done: RepairReport) -> None:
    kind = "audit log" if done.audit else "JSON-lines file"
    _say(f"{done.action}: {done.path} ({kind})")
    for label, path in (("backup", done.backup), ("restored from", done.restored_from),
                        ("quarantine", done.quarantine)):
        if path is not None:
            _say(f"  {label}: {path}")
    for candidate, why in done.skipped:
        _say(f"  not restored from {candidate}: {why}")
    _say(f"  lines read {done.lines_read}: kept {done.kept}, repaired {done.repaired}, "
         f"quarantined {done.quarantined}"
         + (f" (and {done.fragments} fragment(s) of repaired lines)" if done.fragments else "")
         + (f"; {done.quarantined_bytes} byte(s) in the quarantine" if done.quarantine else ""))
    if done.appended_records:
        _say(f"  appended {done.appended_records} audit record(s) acknowledging "
             f"{done.acknowledged_breaks} chain break(s)")
    for note in done.notes:
        _say(f"  note: {note}")
