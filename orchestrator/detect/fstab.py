"""``fstab:<path>`` probes: would the next boot stop at an fstab entry whose device does not exist?

A mount that takes part in the boot (no ``nofail``, ``noauto``, not a network or virtual file system;
the rules are in :mod:`orchestrator.detect.fstab_table`) and whose source cannot be resolved on the
host makes ``local-fs.target`` fail at the next boot, and systemd drops to emergency mode: BOOT_CONFIG,
critical, found while the host still runs. A swap entry with a missing device only delays the boot:
BOOT_CONFIG, warning. A file that does not exist mounts nothing and passes; one the agent cannot read
makes the probe unavailable.

Existence is checked on the host through the agent: every device path (``/dev/...``, including the
``/dev/disk/by-*`` names of ``UUID=``-style sources) in ONE ``manifest`` call, which lstat()s each path
(the ones that do not exist come back in ``missing``). Other paths — bind-mount sources, image files —
are checked one by one with ``disk_usage`` (statvfs, which follows symlinks like mount(8) does):
``manifest`` would walk a source directory recursively, hashing every file below it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi, AgentRead
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.detect.fstab_table import FstabEntry, Need, need_of, parse_fstab
from orchestrator.errors import AgentError, AgentFailedError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity

PREFIX = "fstab:"
#: An fstab is a few hundred bytes; anything near this is not one we should parse.
MAX_FSTAB_BYTES = 1024 * 1024
#: Device paths looked up (in one manifest call); a real fstab has a few dozen entries at most.
MAX_DEVICE_CHECKS = 256
#: Other paths (bind sources, image files), one agent call each.
MAX_PATH_CHECKS = 16
#: Characters of an fstab field kept in a summary.
_FIELD_IN_SUMMARY = 200
#: Evidence keys that list offending lines (see :func:`listing`).
LISTED_KEYS = ("blocking", "missing_swap")
_LISTED_LINE = re.compile(r"^line (\d{1,9}): ", re.MULTILINE)


def probe_name(path: str) -> str:
    return f"{PREFIX}{path}"


@dataclass(frozen=True)
class FstabAnalysis:
    """The entries of one fstab and those whose source does not exist on the host."""

    entries: tuple[FstabEntry, ...]
    #: Mounts the boot requires: the next boot drops to emergency mode.
    blocking: tuple[Need, ...] = ()
    #: Swap areas: the next boot waits for the device, then continues without it.
    missing_swap: tuple[Need, ...] = ()
    #: Paths not looked up because of the caps above.
    unchecked: int = 0

    @property
    def broken(self) -> tuple[Need, ...]:
        """Every entry with a missing source, in file order."""
        return tuple(sorted(self.blocking + self.missing_swap, key=lambda n: n.entry.line))


def analyse(agent: AgentApi, data: bytes) -> FstabAnalysis:
    """Parse ``data`` and look up, on the host behind ``agent``, what each boot entry needs.

    Raises:
        AgentError: the agent could not answer (a path that does not exist is not an error).
        TransportError: the host cannot be reached.
    """
    entries = parse_fstab(data)
    needs = [need for entry in entries if (need := need_of(entry)) is not None]
    devices = sorted({n.path for n in needs if n.path is not None and n.is_device})
    others = sorted({n.path for n in needs if n.path is not None and not n.is_device})
    unchecked = max(0, len(devices) - MAX_DEVICE_CHECKS) + max(0, len(others) - MAX_PATH_CHECKS)
    devices, others = devices[:MAX_DEVICE_CHECKS], others[:MAX_PATH_CHECKS]
    missing = set(agent.manifest(devices).missing) if devices else set()
    missing.update(path for path in others if not _exists(agent, path))
    # A path beyond the caps is never in ``missing``: an unchecked entry is not reported.
    broken = [n for n in needs if n.path is None or n.path in missing]
    return FstabAnalysis(entries, tuple(n for n in broken if not n.entry.is_swap),
                         tuple(n for n in broken if n.entry.is_swap), unchecked)


def _exists(agent: AgentApi, path: str) -> bool:
    try:
        agent.disk_usage(path)
    except AgentFailedError as exc:
        if exc.code == "not_found":
            return False
        raise
    return True


def first_reads(path: str) -> tuple[AgentRead, ...]:
    """The agent read the probe of ``path`` starts with (batched by the Detector); the reads that
    depend on the file's content follow one by one."""
    return (("read_file", {"path": path, "max_bytes": MAX_FSTAB_BYTES}),)


def probe_fstab(agent: AgentApi, component: Component, path: str) -> ProbeResult:
    """Check the fstab at ``path`` on the host.

    Raises:
        TransportError: the host cannot be reached (an agent failure makes the probe unavailable).
    """
    pid = ProbeId(probe_name(path), component.name, IssueKind.BOOT_CONFIG, path)
    try:
        data = agent.read_file(path, max_bytes=MAX_FSTAB_BYTES)
    except AgentError as exc:
        if isinstance(exc, AgentFailedError) and exc.code == "not_found":
            return pid.passed(f"{path} does not exist: the boot mounts nothing from it")
        return pid.unavailable(f"the agent could not read {path}: {exc.message}")
    try:
        analysis = analyse(agent, data)
    except AgentError as exc:
        return pid.unavailable(f"the agent could not look up the devices {path} names: {exc.message}")
    return verdict(pid, path, analysis)


def verdict(pid: ProbeId, path: str, analysis: FstabAnalysis) -> ProbeResult:
    """The probe's result for an analysed fstab (rules in the module docstring)."""
    evidence = {"entries": str(len(analysis.entries))}
    if analysis.unchecked:
        evidence["unchecked"] = (f"{analysis.unchecked} paths beyond the first {MAX_DEVICE_CHECKS} "
                                 f"devices and {MAX_PATH_CHECKS} other paths were not looked up")
    if analysis.blocking:
        evidence["blocking"] = listing(analysis.blocking)
    if analysis.missing_swap:
        evidence["missing_swap"] = listing(analysis.missing_swap)
    if analysis.blocking:
        return pid.failed(Severity.CRITICAL, blocking_summary(path, analysis.blocking), evidence)
    if analysis.missing_swap:
        first = analysis.missing_swap[0]
        more = f" (and {len(analysis.missing_swap) - 1} more)" if len(analysis.missing_swap) > 1 else ""
        return pid.failed(Severity.WARNING,
                          f"{path}: swap on {_field(first.entry.source)}{more} has no nofail and "
                          f"{_field(first.describe())}; the next boot waits for it (90 s by default), "
                          f"then continues without it", evidence)
    return pid.passed(f"{path}: {len(analysis.entries)} entries, none would stop the next boot", evidence)


def blocking_summary(path: str, blocking: Sequence[Need]) -> str:
    first = blocking[0]
    where = f"{_field(first.entry.target)} ({_field(first.entry.source)})"
    if len(blocking) == 1:
        return (f"{path}: the mount of {where} has no nofail and {_field(first.describe())}; the next boot "
                f"would drop to emergency mode")
    return (f"{path}: {len(blocking)} mounts without nofail name sources that do not exist, first "
            f"{where}: {_field(first.describe())}; the next boot would drop to emergency mode")


def listing(needs: Sequence[Need]) -> str:
    """The offending lines as written, each with what is missing (capped evidence)."""
    return cap_evidence("\n".join(
        f"line {n.entry.line}: {cap_evidence(n.entry.text, 512)} -- {n.describe()}" for n in needs))


def listed_lines(evidence: Mapping[str, str]) -> frozenset[int]:
    """The line numbers a failed result's evidence lists (a line's text never holds a newline, so
    only :func:`listing`'s own line starts match); empty when it lists none."""
    return frozenset(int(m) for key in LISTED_KEYS for m in _LISTED_LINE.findall(evidence.get(key, "")))


def _field(value: str) -> str:
    return cap_evidence(value.encode("utf-8", "surrogateescape"), _FIELD_IN_SUMMARY)
