"""``kernel:taint``: has the running kernel hit a fault since boot?

Two sources, both kept until the next boot:

1. ``/proc/sys/kernel/tainted``, a bit mask (Documentation/admin-guide/tainted-kernels.rst). Every
   set flag is decoded and listed in the evidence. The flags treated as faults:

   - ``D`` (bit 7) the kernel died: an oops or BUG killed a task → critical;
   - ``M`` (bit 4) a CPU reported a machine check exception → critical (failing hardware);
   - ``B`` (bit 5) a bad page reference or unexpected page flags → critical (memory corruption);
   - ``W`` (bit 9) the kernel issued a warning (``WARN_ON``) → warning;
   - ``L`` (bit 14) a soft lockup: a CPU was stuck in the kernel for seconds → warning.

   The others say how the kernel was built or what was loaded, not that something went wrong: ``P``
   proprietary (bit 0), ``O`` out-of-tree (bit 12) and ``E`` unsigned (bit 13) modules, a live patch
   (``K``), an ACPI table override (``A``), ``F``/``R`` forced module (un)loads and so on.

2. The kernel's journal lines of the current boot at priority ``warning`` or more urgent, searched
   for ``Kernel panic``, ``BUG:`` (and ``kernel BUG at``), ``Oops`` and ``general protection fault``.
   ``warning`` rather than ``err``: x86 prints the ``Oops: 0002 [#1]`` and ``general protection
   fault ...`` headers at KERN_DEFAULT (arch/x86/kernel/dumpstack.c), which the journal stores at the
   default console level, 4 (warning); ``err`` would miss them. A match → warning (at most
   :data:`MAX_LINES` of them are kept, newest).

KERNEL_FAULT, critical for ``D``, ``M`` or ``B``, warning otherwise. Either source alone decides
when the other cannot be read (noted in the evidence); neither → unavailable.
"""

from __future__ import annotations

import re

from orchestrator.agent.api import AgentApi, AgentRead
from orchestrator.detect.common import HOST_COMPONENT, ProbeId, cap_evidence
from orchestrator.detect.kernel_log import KernelLog, read_kernel_log
from orchestrator.errors import AgentError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PROBE_NAME = "kernel:taint"
SUBJECT = "kernel"
TAINTED_PATH = "/proc/sys/kernel/tainted"
TAINTED_MAX_BYTES = 64
#: Journal lines quoted in the evidence, each capped at LINE_CHARS (note included).
MAX_LINES = 10
LINE_CHARS = 320
JOURNAL_PRIORITY = "warning"
#: Bit -> (letter, meaning), as the kernel prints them in "Tainted:" (kernel/panic.c taint_flags).
TAINT_FLAGS: dict[int, tuple[str, str]] = {
    0: ("P", "proprietary module loaded"),
    1: ("F", "module force loaded"),
    2: ("S", "kernel running on an out of specification system"),
    3: ("R", "module force unloaded"),
    4: ("M", "processor reported a machine check exception"),
    5: ("B", "bad page referenced or unexpected page flags"),
    6: ("U", "taint requested by userspace"),
    7: ("D", "kernel died recently (oops or BUG)"),
    8: ("A", "ACPI table overridden by user"),
    9: ("W", "kernel issued a warning"),
    10: ("C", "staging driver loaded"),
    11: ("I", "workaround for a platform firmware bug"),
    12: ("O", "externally-built (out-of-tree) module loaded"),
    13: ("E", "unsigned module loaded"),
    14: ("L", "soft lockup occurred"),
    15: ("K", "kernel live patched"),
    16: ("X", "auxiliary taint (distribution-defined)"),
    17: ("T", "kernel built with the struct randomization plugin"),
    18: ("N", "in-kernel test run"),
}
CRITICAL_BITS = frozenset({7, 4, 5})
WARNING_BITS = frozenset({9, 14})
_FAULT_RE = re.compile(r"Kernel panic|\bBUG: |kernel BUG at|\bOops\b|general protection fault")
#: The mask is an unsigned long: at most 20 decimal digits.
_TAINT_RE = re.compile(r"^\d{1,20}$")


def parse_tainted(text: str) -> int | None:
    """The taint mask of ``/proc/sys/kernel/tainted``; None for anything but one decimal number."""
    value = text.strip()
    return int(value) if _TAINT_RE.match(value) and int(value) < 2**64 else None


def decode_taint(mask: int) -> list[tuple[int, str, str]]:
    """(bit, letter, meaning) of every set bit, lowest first; unknown bits have letter ``?``."""
    return [(bit, *TAINT_FLAGS.get(bit, ("?", f"bit {bit} (unknown to vmrepair)")))
            for bit in range(mask.bit_length()) if mask >> bit & 1]


def fault_lines(log: KernelLog) -> list[str]:
    """The journal lines that report a kernel fault, newest first."""
    return [line for line in log.lines if _FAULT_RE.search(line)]


def first_reads() -> tuple[AgentRead, ...]:
    """The agent read the probe starts with (batched by the Detector)."""
    return (("read_file", {"path": TAINTED_PATH, "max_bytes": TAINTED_MAX_BYTES}),)


def evaluate(taint: int | str, journal: KernelLog | str) -> ProbeResult:
    """``taint``: the mask, or why it could not be read; ``journal``: the boot's kernel lines at
    :data:`JOURNAL_PRIORITY`, or why they could not be read."""
    pid = ProbeId(PROBE_NAME, HOST_COMPONENT, IssueKind.KERNEL_FAULT, SUBJECT)
    if isinstance(taint, str) and isinstance(journal, str):
        return pid.unavailable(f"{taint}; {journal}")
    evidence: dict[str, str] = {}
    reasons: list[str] = []
    severity: Severity | None = None
    if isinstance(taint, int):
        flags = decode_taint(taint)
        evidence["tainted"] = str(taint)
        evidence["flags"] = "\n".join(f"{letter} (bit {bit}): {meaning}" for bit, letter, meaning in flags) \
            or "none"
        faults = [(bit, letter) for bit, letter, _ in flags if bit in CRITICAL_BITS | WARNING_BITS]
        if faults:
            severity = (Severity.CRITICAL if any(bit in CRITICAL_BITS for bit, _ in faults)
                        else Severity.WARNING)
            reasons.append("tainted " + "".join(letter for _, letter in faults) + " ("
                           + ", ".join(TAINT_FLAGS[bit][1] for bit, _ in faults) + ")")
    else:
        evidence["taint_error"] = cap_evidence(taint, 512)
    if isinstance(journal, KernelLog):
        lines = fault_lines(journal)
        evidence["journal_fault_lines"] = str(len(lines))
        if lines:
            kept = [cap_evidence(line, LINE_CHARS) for line in reversed(lines[:MAX_LINES])]
            evidence["journal"] = cap_evidence("\n".join(kept))
            severity = severity or Severity.WARNING
            reasons.append(f"{len(lines)} kernel fault line{'s' if len(lines) != 1 else ''} in this boot's "
                           f"journal, last: {cap_evidence(lines[0], 256)}")
    else:
        evidence["journal_error"] = cap_evidence(journal, 512)
    if severity is None:
        return pid.passed("the kernel reports no fault since boot", evidence)
    return pid.failed(severity, f"kernel fault since boot: {'; '.join(reasons)}", evidence)


def probe_kernel(transport: Transport, agent: AgentApi) -> ProbeResult:
    """Raises: TransportError: the target cannot be reached."""
    taint: int | str
    try:
        raw = agent.read_file(TAINTED_PATH, max_bytes=TAINTED_MAX_BYTES)
    except AgentError as exc:
        taint = f"the agent could not read {TAINTED_PATH}: {exc.message}"
    else:
        parsed = parse_tainted(raw.decode("ascii", errors="replace"))
        taint = f"{TAINTED_PATH} holds no taint mask" if parsed is None else parsed
    return evaluate(taint, read_kernel_log(transport, priority=JOURNAL_PRIORITY))
