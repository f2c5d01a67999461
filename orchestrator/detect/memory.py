"""``memory:pressure`` and ``memory:oom``: is the host short of memory, and has it been killing for it?

``memory:pressure`` reads ``/proc/meminfo`` and, where the kernel has it, ``/proc/pressure/memory``
(PSI; absent before Linux 4.20 and when booted without ``psi=1`` on kernels that default it off, such
as Debian's: then meminfo alone decides). MEMORY_PRESSURE:

- MemAvailable below ``memory_available_critical_pct`` of MemTotal → critical: the next allocation
  burst wakes the OOM killer;
- below ``memory_available_warning_pct`` → warning;
- PSI ``full avg60`` at or over ``psi_full_avg60_warning`` (share of the last minute in which every
  runnable task stalled on memory) or ``some avg60`` at or over ``psi_some_avg60_warning`` → warning:
  the host is thrashing even if MemAvailable looks fine.

``memory:oom`` counts OOM kills of the last ``oom_window_minutes``. ``oom_kill`` in ``/proc/vmstat``
counts every kill since boot (Linux 4.13+): zero means no kill in any window, and the journal is not
read. Otherwise the kernel's journal lines of the window (``journalctl -k --since=-<N>min``) are
searched for the kernel's two lines per kill (``mm/oom_kill.c``)::

    oom-kill:constraint=CONSTRAINT_NONE,...,task=stress-ng,pid=1234,uid=0
    Out of memory: Killed process 1234 (stress-ng) total-vm:..., anon-rss:..., ...

(``Memory cgroup out of memory: Killed process ...`` for a cgroup's limit), one kill per pid. Any kill
in the window → MEMORY_PRESSURE, warning, naming the killed processes. Kills since boot but none in
the window pass. No journalctl (with kills since boot, or no vmstat count) → unavailable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from orchestrator.agent.api import AgentApi, AgentRead
from orchestrator.components.config import Thresholds
from orchestrator.detect.common import HOST_COMPONENT, ProbeId, cap_evidence
from orchestrator.detect.kernel_log import KernelLog, read_kernel_log, stamp
from orchestrator.errors import AgentError, AgentFailedError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PRESSURE_PROBE = "memory:pressure"
OOM_PROBE = "memory:oom"
SUBJECT = "memory"
PSI_PATH = "/proc/pressure/memory"
MEMINFO_PATH = "/proc/meminfo"
VMSTAT_PATH = "/proc/vmstat"
#: /proc/meminfo and /proc/vmstat are a few KiB; PSI two lines.
PROC_MAX_BYTES = 64 * 1024
#: Killed processes named in the evidence (the rest are counted).
MAX_LISTED_KILLS = 10
_KIB = 1024
_KILLED_RE = re.compile(r"Killed process (\d{1,10}) \((.{0,64}?)\)(?=[\s,]|$)")
_OOM_KILL_RE = re.compile(r"oom-kill:.*?,task=(.{0,64}?),pid=(\d{1,10})(?=[,\s]|$)")
_PSI_FIELD_RE = re.compile(r"^(avg10|avg60|avg300)=(\d{1,3}\.\d{1,2})$")
_MEMINFO_RE = re.compile(r"^([A-Za-z_()0-9]{1,32}):\s+(\d{1,15})(?: kB)?$")


@dataclass(frozen=True)
class Pressure:
    """The avg60 of PSI's ``some`` and ``full`` lines, in percent (``full`` None if not printed)."""

    some_avg60: float
    full_avg60: float | None = None


@dataclass(frozen=True)
class MemInfo:
    total_kib: int
    available_kib: int

    @property
    def available_pct(self) -> float:
        return 100.0 * self.available_kib / self.total_kib


def parse_psi(text: str) -> Pressure | None:
    """``some avg10=0.00 avg60=0.00 avg300=0.00 total=0`` (and a ``full`` line); None unless a valid
    ``some`` line is there. Values outside 0..100 are refused."""
    found: dict[str, float] = {}
    for line in text.splitlines()[:8]:
        words = line.split()
        if not words or words[0] not in ("some", "full") or words[0] in found:
            continue
        for word in words[1:]:
            match = _PSI_FIELD_RE.match(word)
            if match and match.group(1) == "avg60":
                value = float(match.group(2))
                if math.isfinite(value) and 0.0 <= value <= 100.0:
                    found[words[0]] = value
                break
    if "some" not in found:
        return None
    return Pressure(found["some"], found.get("full"))


def parse_meminfo(text: str) -> MemInfo | None:
    """MemTotal and MemAvailable (kB) of ``/proc/meminfo``; None if either is missing or absurd."""
    values: dict[str, int] = {}
    for line in text.splitlines()[:512]:
        match = _MEMINFO_RE.match(line.strip())
        if match and match.group(1) not in values:
            values[match.group(1)] = int(match.group(2))
    total, available = values.get("MemTotal"), values.get("MemAvailable")
    if not total or available is None or available > total:
        return None
    return MemInfo(total, available)


def parse_oom_kill_count(text: str) -> int | None:
    """``oom_kill N`` of ``/proc/vmstat``; None when the kernel does not count (before 4.13)."""
    for line in text.splitlines()[:1024]:
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            value = value.strip()
            return int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else None
    return None


def pressure_reads() -> tuple[AgentRead, ...]:
    """The agent reads ``memory:pressure`` starts with (batched by the Detector)."""
    return (("read_file", {"path": PSI_PATH, "max_bytes": PROC_MAX_BYTES}),
            ("read_file", {"path": MEMINFO_PATH, "max_bytes": PROC_MAX_BYTES}))


def oom_reads() -> tuple[AgentRead, ...]:
    return (("read_file", {"path": VMSTAT_PATH, "max_bytes": PROC_MAX_BYTES}),)


def _read(agent: AgentApi, path: str) -> str | AgentError:
    try:
        return agent.read_file(path, max_bytes=PROC_MAX_BYTES).decode("ascii", errors="replace")
    except AgentError as exc:
        return exc


# -- memory:pressure -----------------------------------------------------------------------------
@dataclass
class _Verdict:
    """What the evidence of one source says: the worst severity, why, and the figures."""

    severity: Severity | None = None
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)

    def flag(self, severity: Severity, reason: str) -> None:
        if self.severity is not Severity.CRITICAL:
            self.severity = severity
        self.reasons.append(reason)


def _judge_meminfo(meminfo: MemInfo, thresholds: Thresholds, verdict: _Verdict) -> None:
    pct = meminfo.available_pct
    verdict.evidence.update(
        mem_total_kib=str(meminfo.total_kib), mem_available_kib=str(meminfo.available_kib),
        available_pct=f"{pct:.1f}", available_warning_pct=f"{thresholds.memory_available_warning_pct:g}",
        available_critical_pct=f"{thresholds.memory_available_critical_pct:g}")
    reason = (f"only {pct:.1f}% of memory available ({meminfo.available_kib // _KIB} of "
              f"{meminfo.total_kib // _KIB} MiB)")
    if pct < thresholds.memory_available_critical_pct:
        verdict.flag(Severity.CRITICAL, reason)
    elif pct < thresholds.memory_available_warning_pct:
        verdict.flag(Severity.WARNING, reason)


def _judge_psi(psi: Pressure, thresholds: Thresholds, verdict: _Verdict) -> None:
    verdict.evidence.update(psi_some_avg60=f"{psi.some_avg60:.2f}",
                            psi_some_avg60_warning=f"{thresholds.psi_some_avg60_warning:g}")
    if psi.full_avg60 is not None:
        verdict.evidence.update(psi_full_avg60=f"{psi.full_avg60:.2f}",
                                psi_full_avg60_warning=f"{thresholds.psi_full_avg60_warning:g}")
        if psi.full_avg60 >= thresholds.psi_full_avg60_warning:
            verdict.flag(Severity.WARNING, f"all tasks stalled on memory {psi.full_avg60:.2f}% of the "
                                           f"last minute")
    if psi.some_avg60 >= thresholds.psi_some_avg60_warning:
        verdict.flag(Severity.WARNING, f"some tasks stalled on memory {psi.some_avg60:.2f}% of the last "
                                       f"minute")


def evaluate_pressure(
    meminfo: MemInfo | str, psi: Pressure | str | None, thresholds: Thresholds
) -> ProbeResult:
    """``meminfo``: parsed, or why not; ``psi``: parsed, None when the kernel has no PSI, or why it
    could not be read."""
    pid = ProbeId(PRESSURE_PROBE, HOST_COMPONENT, IssueKind.MEMORY_PRESSURE, SUBJECT)
    if isinstance(meminfo, str) and not isinstance(psi, Pressure):
        return pid.unavailable(meminfo, {"psi": _psi_note(psi)})
    verdict = _Verdict()
    if isinstance(meminfo, MemInfo):
        _judge_meminfo(meminfo, thresholds, verdict)
    else:
        verdict.evidence["meminfo"] = cap_evidence(meminfo, 512)
    if isinstance(psi, Pressure):
        _judge_psi(psi, thresholds, verdict)
    else:
        verdict.evidence["psi"] = _psi_note(psi)
    if verdict.severity is None:
        available = verdict.evidence.get("available_pct")
        return pid.passed(f"memory: {available}% available" if available else "memory: no stalls",
                          verdict.evidence)
    return pid.failed(verdict.severity, f"memory pressure: {'; '.join(verdict.reasons)}", verdict.evidence)


def _psi_note(psi: str | None) -> str:
    if psi is None:
        return f"{PSI_PATH} does not exist (kernel without PSI, or booted without psi=1)"
    return cap_evidence(psi, 512)


def probe_pressure(agent: AgentApi, thresholds: Thresholds) -> ProbeResult:
    """Raises: TransportError: the target cannot be reached (agent failures are reasons)."""
    raw_psi = _read(agent, PSI_PATH)
    psi: Pressure | str | None
    if isinstance(raw_psi, AgentFailedError) and raw_psi.code == "not_found":
        psi = None
    elif isinstance(raw_psi, AgentError):
        psi = f"the agent could not read {PSI_PATH}: {raw_psi.message}"
    else:
        psi = parse_psi(raw_psi) or f"{PSI_PATH} holds no PSI 'some' line"
    raw_meminfo = _read(agent, MEMINFO_PATH)
    meminfo: MemInfo | str
    if isinstance(raw_meminfo, AgentError):
        meminfo = f"the agent could not read {MEMINFO_PATH}: {raw_meminfo.message}"
    else:
        meminfo = parse_meminfo(raw_meminfo) or f"{MEMINFO_PATH} holds no valid MemTotal and MemAvailable"
    return evaluate_pressure(meminfo, psi, thresholds)


# -- memory:oom ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OomKill:
    pid: int
    process: str
    when: str = ""


def find_oom_kills(lines: tuple[str, ...] | list[str]) -> list[OomKill]:
    """One kill per pid found in kernel journal ``lines`` (either of the kernel's two lines names it),
    in the order first seen; process names escaped and capped."""
    kills: dict[int, OomKill] = {}
    for line in lines:
        match = _KILLED_RE.search(line)
        if match:
            pid, name = int(match.group(1)), match.group(2)
        elif (oom := _OOM_KILL_RE.search(line)) is not None:
            pid, name = int(oom.group(2)), oom.group(1)
        else:
            continue
        if pid not in kills:
            kills[pid] = OomKill(pid, cap_evidence(name, 128), stamp(line))
    return list(kills.values())


def evaluate_oom(since_boot: int | None, journal: KernelLog | str | None, window_minutes: int) -> ProbeResult:
    """``since_boot``: vmstat's oom_kill (None: not counted); ``journal``: the window's kernel lines,
    None when not read (no kill since boot), or why they could not be read."""
    pid = ProbeId(OOM_PROBE, HOST_COMPONENT, IssueKind.MEMORY_PRESSURE, SUBJECT)
    evidence = {"window_minutes": str(window_minutes),
                "oom_kills_since_boot": "not counted" if since_boot is None else str(since_boot)}
    if since_boot == 0:
        return pid.passed("no OOM kill since boot", evidence)
    if journal is None or isinstance(journal, str):
        return pid.unavailable(journal or "the kernel journal was not read", evidence)
    if journal.is_truncated:
        evidence["journal"] = "cut at the read limit: the oldest lines of the window were not read"
    kills = find_oom_kills(journal.lines)
    evidence["kills_in_window"] = str(len(kills))
    if not kills:
        return pid.passed(f"no OOM kill in the last {window_minutes} min", evidence)
    listed = [f"{k.when or '?'} pid {k.pid} ({k.process})" for k in kills[:MAX_LISTED_KILLS]]
    if len(kills) > MAX_LISTED_KILLS:
        listed.append(f"... and {len(kills) - MAX_LISTED_KILLS} more")
    evidence["killed"] = cap_evidence("\n".join(listed))
    names = sorted({k.process for k in kills})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    count = f"{len(kills)} process{'es' if len(kills) != 1 else ''}"
    return pid.failed(Severity.WARNING, f"the kernel killed {count} for memory in the last "
                      f"{window_minutes} min: {shown}", evidence)


def probe_oom(transport: Transport, agent: AgentApi, thresholds: Thresholds) -> ProbeResult:
    """Raises: TransportError: the target cannot be reached."""
    raw = _read(agent, VMSTAT_PATH)
    since_boot = None if isinstance(raw, AgentError) else parse_oom_kill_count(raw)
    window = thresholds.oom_window_minutes
    journal = None if since_boot == 0 else read_kernel_log(transport, since_minutes=window)
    return evaluate_oom(since_boot, journal, window)
