"""Restart loops counted in a time window, from the entries systemd (PID 1) writes to the journal.

systemd logs a structured entry, with the unit's primary name in ``UNIT=``, each time a unit fails
and each time it schedules an automatic restart. The MESSAGE_IDs are systemd's catalog
(``catalog/systemd.catalog.in``, ``src/systemd/sd-messages.h``; the same in systemd 252, Debian 12):

- ``d9b373ed55a64feb8242e02dbe79a49c`` "Unit failed" (``SD_MESSAGE_UNIT_FAILURE_RESULT``):
  ``<unit>: Failed with result 'exit-code'.``, with ``UNIT_RESULT=``. ``service_enter_dead()`` logs
  it for every failure, *before* deciding on ``Restart=``, so a loop logs one per turn;
- ``5eb03494b6584870a536b337290809b3`` "Automatic restarting of a unit has been scheduled"
  (``SD_MESSAGE_UNIT_RESTART_SCHEDULED``): ``Scheduled restart job, restart counter is at N.``. It
  also counts a ``Restart=always`` unit whose process exits cleanly over and over (no failure logged).

Read, never counted: ``98e322203f7a4ed290d09fe03c09fe15`` "Unit process exited"
(``SD_MESSAGE_UNIT_PROCESS_EXIT``), ``<unit>: Main process exited, code=exited, status=200/CHDIR``,
with ``EXIT_CODE=`` and ``EXIT_STATUS=``, is logged once per failed *process* (ExecStartPre=, the main
process, ExecStopPost= ...), so it would count one failure of a unit several times; the newest one is
the unit's last exit (evidence ``loop_last_exit``), which ``systemctl show`` no longer has once systemd
starts the unit again (a start resets ``ExecMainStatus``). A unit's turns in the window are
``max(failures, restarts scheduled)``: an
``on-failure`` loop logs both once a turn, an ``always`` loop of clean exits only the second. A
``start-limit-hit`` result is systemd giving up, not another failure of the unit: named, not counted.

One ``journalctl`` per detection round answers every watched unit (:func:`shared_loops`)::

    journalctl --no-pager --output=json --output-fields=... --since=-<M>min --reverse --lines=N
               _PID=1 MESSAGE_ID=<failed> MESSAGE_ID=<restart> MESSAGE_ID=<exited> UNIT=<a> ...

Matches on one field are alternatives, on different fields all must hold. ``_PID`` is a trusted
field journald sets itself: any local user can log an entry with these MESSAGE_ID and UNIT fields
(``logger --journald``), only PID 1 is systemd. The window is applied by journalctl with the
target's own clock, the clock that stamped the entries (the orchestrator's may differ: a VM restored
from a snapshot runs behind until it syncs). Newest first and capped (:data:`MAX_ENTRIES`,
:data:`OUTPUT_MAX`): a cut drops the oldest entries, which can only lower a count.

Every line is untrusted: a line that is not a JSON object of string fields, is longer than
:data:`LINE_MAX`, or has no valid timestamp is skipped and counted; entries of units not asked about
are ignored. Nothing read here reaches an argv: the UNIT matches are the watched names, and only the
names that are valid unit names (:func:`orchestrator.systemd.argv.is_unit_name`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from orchestrator.detect.common import command_output, run_command
from orchestrator.detect.shared import RunShared
from orchestrator.errors import CommandTimeoutError
from orchestrator.systemd.argv import is_unit_name
from orchestrator.timestamps import epoch_timestamp
from orchestrator.transport.base import Transport

JOURNALCTL = "journalctl"
UNIT_FAILED_ID = "d9b373ed55a64feb8242e02dbe79a49c"
RESTART_SCHEDULED_ID = "5eb03494b6584870a536b337290809b3"
PROCESS_EXIT_ID = "98e322203f7a4ed290d09fe03c09fe15"
_MESSAGE_IDS = (UNIT_FAILED_ID, RESTART_SCHEDULED_ID, PROCESS_EXIT_ID)
TIMEOUT_S = 60.0
#: Entries read per round (newest first); 10 watched units looping every second for 10 minutes is
#: 12 000 entries of each kind, far past any threshold that matters.
MAX_ENTRIES = 5000
#: About 250 bytes an entry with the fields asked for.
OUTPUT_MAX = 2 * 1024 * 1024
#: An entry with only the fields asked for is about 250 bytes; anything far longer is not one.
LINE_MAX = 4096
#: Failure times named in the evidence (the newest).
MAX_LISTED = 5
FIELDS = ("MESSAGE_ID", "UNIT", "UNIT_RESULT", "_PID", "EXIT_CODE", "EXIT_STATUS")
#: What a line is read for (``__REALTIME_TIMESTAMP`` comes with every json entry).
_ENTRY_FIELDS = ("UNIT", "MESSAGE_ID", "__REALTIME_TIMESTAMP", "_PID", "UNIT_RESULT", "EXIT_CODE",
                 "EXIT_STATUS")
#: ``sigchld_code_to_string()``'s names, and an exit status or signal number.
_EXIT_CODES = frozenset({"exited", "killed", "dumped"})
_EXIT_STATUS_RE = re.compile(r"^\d{1,3}$")
_STAMP_RE = re.compile(r"^\d{1,19}$")
_RESULT_RE = re.compile(r"^[a-z-]{1,32}$")
#: What journalctl says when it can read no journal, or only the caller's own.
_NO_ACCESS = ("insufficient permissions", "No journal files were", "not seeing messages from other users")


@dataclass
class LoopRecord:
    """What the window's journal says about one unit."""

    #: Realtime timestamps (µs) of its failures, newest first (``start-limit-hit`` not among them).
    failures: list[int] = field(default_factory=list)
    restarts: int = 0
    #: UNIT_RESULT of each failure, newest first (``start-limit-hit`` included).
    results: list[str] = field(default_factory=list)
    #: The newest process exit systemd logged for the unit (``exited 200``, ``killed 9``), "" if none.
    last_exit: str = ""

    @property
    def turns(self) -> int:
        """Times the unit went down in the window (the module docstring says why the maximum)."""
        return max(len(self.failures), self.restarts)

    @property
    def has_given_up(self) -> bool:
        return "start-limit-hit" in self.results


@dataclass(frozen=True)
class UnitLoops:
    """The window's answer for every unit asked about, or why the journal could not be read."""

    window_minutes: int
    records: dict[str, LoopRecord] = field(default_factory=dict)
    #: Lines that were not a valid entry (counted, never interpreted).
    skipped: int = 0
    #: The output was cut at :data:`OUTPUT_MAX` or :data:`MAX_ENTRIES`: older entries not read.
    is_truncated: bool = False
    unavailable_reason: str | None = None

    def record(self, unit: str) -> LoopRecord:
        return self.records.get(unit) or LoopRecord()

    def evidence(self, unit: str) -> dict[str, str]:
        """``loop_*`` evidence of ``unit``: the count, the window and the last failure times."""
        if self.unavailable_reason is not None:
            return {"loop_journal": f"not read: {self.unavailable_reason}"}
        rec = self.record(unit)
        out = {"loop_window": f"{self.window_minutes} min", "loop_turns": str(rec.turns),
               "loop_failures": str(len(rec.failures)), "loop_restarts_scheduled": str(rec.restarts)}
        if rec.failures:
            out["loop_last_failures"] = ", ".join(iso(us) for us in rec.failures[:MAX_LISTED])
        if rec.results:
            out["loop_results"] = ", ".join(dict.fromkeys(rec.results))
        if rec.last_exit:
            out["loop_last_exit"] = rec.last_exit
        if self.skipped:
            out["loop_skipped_lines"] = str(self.skipped)
        if self.is_truncated:
            out["loop_truncated"] = "yes: the oldest entries of the window were not read"
        return out


def iso(us: int) -> str:
    return epoch_timestamp(us / 1_000_000)


def journal_argv(units: Sequence[str], window_minutes: int) -> list[str]:
    """The one journalctl of a round (module docstring); ``units`` that are no unit name are left out.

    Raises:
        ValueError: a window below one minute (a caller bug: the config refuses it).
    """
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, got {window_minutes}")
    return [JOURNALCTL, "--no-pager", "--output=json", f"--output-fields={','.join(FIELDS)}",
            f"--since=-{window_minutes}min", "--reverse", f"--lines={MAX_ENTRIES}", "_PID=1",
            *(f"MESSAGE_ID={m}" for m in _MESSAGE_IDS),
            *(f"UNIT={u}" for u in dict.fromkeys(units) if is_unit_name(u))]


def parse_entries(text: bytes, units: Collection[str], window_minutes: int) -> UnitLoops:
    """Count the entries of ``text`` (journalctl's ``-o json`` lines, newest first) per unit of
    ``units``. Never raises: what is not a valid entry is skipped and counted."""
    wanted = set(units)
    records: dict[str, LoopRecord] = {}
    skipped = 0
    for raw in text.split(b"\n"):
        if not raw.strip():
            continue
        entry = _entry(raw)
        if entry is None:
            skipped += 1
            continue
        if entry.unit not in wanted:
            continue
        rec = records.setdefault(entry.unit, LoopRecord())
        if entry.message_id == PROCESS_EXIT_ID:
            rec.last_exit = rec.last_exit or entry.exit   # newest first
            continue
        if entry.message_id == RESTART_SCHEDULED_ID:
            rec.restarts += 1
            continue
        rec.results.append(entry.result)
        if entry.result != "start-limit-hit":
            rec.failures.append(entry.stamp)
    return UnitLoops(window_minutes, records, skipped)


@dataclass(frozen=True)
class _Entry:
    unit: str
    message_id: str
    #: Realtime µs.
    stamp: int
    #: UNIT_RESULT (a failure), "?" when it is not one systemd writes.
    result: str
    #: ``EXIT_CODE EXIT_STATUS`` of a process exit; "" for the other entries or an invalid pair.
    exit: str = ""


def _entry(raw: bytes) -> _Entry | None:
    """One line as an entry, or None if it is not a valid entry."""
    if len(raw) > LINE_MAX:
        return None
    try:
        # Strict: journalctl prints a field that is not UTF-8 as an array of byte values, so invalid
        # bytes on a line mean the line is not journalctl's.
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    # A field logged twice is an array, one that is not UTF-8 a list of byte values: neither is PID 1's.
    values = [obj.get(name, "") for name in _ENTRY_FIELDS]
    if not all(isinstance(v, str) for v in values):
        return None
    unit, message_id, stamp, pid, result, code, status = (str(v) for v in values)
    if (pid != "1" or message_id not in _MESSAGE_IDS or not _STAMP_RE.match(stamp)
            or not is_unit_name(unit)):
        return None
    exited = f"{code} {status}" if code in _EXIT_CODES and _EXIT_STATUS_RE.match(status) else ""
    return _Entry(unit, message_id, int(stamp), result if _RESULT_RE.match(result) else "?", exited)


def read_loops(transport: Transport, units: Sequence[str], window_minutes: int) -> UnitLoops:
    """The window's loops of ``units`` (one journalctl), or why the journal could not be read.

    Raises:
        TransportError: the target cannot be reached (no journalctl, no permission and a timeout
            are reasons).
    """
    if not any(is_unit_name(u) for u in units):
        return UnitLoops(window_minutes)   # without a UNIT match the query would read every unit's
    try:
        result = run_command(transport, journal_argv(units, window_minutes), timeout=TIMEOUT_S,
                             max_output=OUTPUT_MAX)
    except CommandTimeoutError:
        why = f"journalctl did not finish within {TIMEOUT_S:g} s"
        return UnitLoops(window_minutes, unavailable_reason=why)
    if result is None:
        return UnitLoops(window_minutes, unavailable_reason="journalctl is not installed on the target")
    if not result.succeeded:
        return UnitLoops(window_minutes, unavailable_reason=f"journalctl exited {result.exit_status}: "
                         f"{command_output(result, 512).strip()}")
    # journalctl exits 0 when it may read only the caller's own journal, or none at all: an empty
    # answer then says nothing about the units.
    if any(hint in result.stderr_text for hint in _NO_ACCESS):
        return UnitLoops(window_minutes, unavailable_reason=f"journalctl cannot read the system journal: "
                         f"{command_output(result, 512).strip()}")
    stdout = result.stdout
    is_cut = bool(result.stdout_dropped)
    if is_cut:
        stdout = stdout[:stdout.rfind(b"\n") + 1]   # the last line was cut mid-entry
    loops = parse_entries(stdout, units, window_minutes)
    lines = stdout.count(b"\n")
    return UnitLoops(window_minutes, loops.records, loops.skipped, is_cut or lines >= MAX_ENTRIES)


def shared_loops(transport: Transport, units: Sequence[str], window_minutes: int) -> RunShared[UnitLoops]:
    """One journal answer for the unit probes of a detection round."""
    asked = tuple(dict.fromkeys(units))
    return RunShared("unit-loops", lambda: read_loops(transport, asked, window_minutes))
