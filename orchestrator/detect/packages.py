"""``dpkg:<component>`` probes: the component's packages are installed, configured and intact.

Two commands, read-only (neither takes dpkg's lock, so they run while apt does):

1. ``dpkg-query -W -f '${binary:Package}\\t${db:Status-Abbrev}\\n' -- PKG...``: the state of each package.
2. ``dpkg --verify -- PKG...`` for the packages that have files on the host: every packaged file that
   is missing or whose MD5 differs from the one dpkg recorded, as ``missing   c /etc/x`` or
   ``??5??????   /usr/sbin/x`` (9 check characters, a space, ``c`` for a conffile or a space, a space,
   the path; a missing file for another reason than ENOENT ends with `` (strerror)``).

Rules (a fault is PACKAGE_BROKEN, critical for a vital component, a warning otherwise):

- a listed package dpkg does not have installed (unknown to it, ``rc`` config files only, ``un``) is a
  fault: the component names the packages it is made of (discovery found them installed, or the
  operator listed them), so one that is gone was removed under it. ``apt-get install`` is the remedy.
- half-installed (``H``), unpacked (``U``) or half-configured (``F``): a fault, an interrupted or failed
  dpkg run; ``dpkg --configure -a`` (then ``apt-get install --reinstall``) is the remedy. So is the
  reinst-required flag (``R``). Trigger states (``W``, ``t``) are installed packages whose triggers are
  still to run, as presence checks elsewhere treat them: they pass.
- a packaged file missing: a fault, conffile or not. A deleted conffile is not brought back by a plain
  reinstall (dpkg respects the deletion): the remedy says ``--force-confmiss``.
- a non-conffile whose MD5 changed (``5``) or that is no longer a regular file (``M``): a fault.
- a conffile whose MD5 changed: an admin's edit, normal; listed in the evidence, passes.
- a file dpkg could not read to hash (``?`` where ``5`` goes): not judged, listed.

Which package a broken file belongs to is asked (``dpkg-query -S``) only when there is one, so the
remedy names the package to reinstall. Names that are not Debian package names (policy 5.6.1, the
validators of :mod:`orchestrator.facts.parse`) are never passed to dpkg; output lines that do not
have the expected shape are skipped and counted. No dpkg-query on the target: unavailable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.components.ignore import covering
from orchestrator.detect.common import ProbeId, cap_evidence, command_output, run_command
from orchestrator.detect.shared import CommandMemo, RunShared, shared_commands
from orchestrator.detect.verify_cache import VerifyCache
from orchestrator.errors import CommandTimeoutError
from orchestrator.facts.parse import ARCH, DPKG_STATUS, PACKAGE_NAME, is_plain_path, parse_dpkg_search
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import CommandResult, Transport

PREFIX = "dpkg:"
#: dpkg-query's own escapes (\t, \n), passed literally as in a shell.
STATUS_FORMAT = r"${binary:Package}\t${db:Status-Abbrev}\n"
QUERY_TIMEOUT_S = 60.0
#: --verify hashes every file of the packages: a database server's are a few hundred MB.
VERIFY_TIMEOUT_S = 300.0
#: Lines of --verify output looked at (its output is also capped in bytes by the transport).
MAX_VERIFY_LINES = 10_000
#: Files named in the evidence per list, and paths asked about with ``dpkg-query -S``.
MAX_LISTED = 20
#: dpkg-query exits 1 when some names match nothing; 2 and more is dpkg failing.
_QUERY_OK = (0, 1)
_STATES = {"n": "not installed", "c": "removed, its config files left", "H": "half-installed",
           "U": "unpacked but not configured", "F": "half-configured", "W": "awaiting triggers",
           "t": "with triggers pending", "i": "installed"}
_GONE, _HALF, _IN_PLACE = frozenset("nc"), frozenset("HUF"), frozenset("iWt")
_VERIFY_LINE = re.compile(r"^(missing  |[?.SM5DLUGT]{9}) ([c ]) (/.*)$")


def probe_name(component: Component) -> str:
    return f"{PREFIX}{component.name}"


def status_argv(packages: Sequence[str]) -> list[str]:
    return ["dpkg-query", "-W", "-f", STATUS_FORMAT, "--", *packages]


def verify_argv(packages: Sequence[str]) -> list[str]:
    return ["dpkg", "--verify", "--", *packages]


def search_argv(paths: Sequence[str]) -> list[str]:
    return ["dpkg-query", "-S", "--", *paths]


# -- parsing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """One ``${binary:Package}`` line: the name dpkg takes back (``libc6:amd64`` for Multi-Arch: same
    packages), the bare package name, and the 3-letter state (want, status, error flag)."""

    binary: str
    name: str
    abbrev: str

    @property
    def status(self) -> str:
        return self.abbrev[1]

    @property
    def needs_reinstall(self) -> bool:
        return self.abbrev[2:] == "R"

    def describe(self) -> str:
        flag = ", reinstall required" if self.needs_reinstall else ""
        return f"{self.binary} {self.abbrev.strip()} ({_STATES.get(self.status, 'unknown state')}{flag})"


def parse_status(text: str, wanted: Sequence[str]) -> tuple[dict[str, list[Installed]], int]:
    """The lines of ``wanted`` packages (several per name for Multi-Arch: same) and the number of
    lines that were not a package line."""
    states: dict[str, list[Installed]] = {}
    rejected = 0
    for line in text.splitlines()[:MAX_VERIFY_LINES]:
        if not line.strip():
            continue
        binary, sep, abbrev = line.partition("\t")
        name, colon, arch = binary.partition(":")
        abbrev = abbrev.strip()
        if not (sep and PACKAGE_NAME.match(name) and (not colon or ARCH.match(arch))
                and DPKG_STATUS.match(abbrev)):
            rejected += 1
            continue
        if name in wanted:
            states.setdefault(name, []).append(Installed(binary, name, abbrev.ljust(3)))
    return states, rejected


@dataclass(frozen=True)
class VerifyLine:
    """One file ``dpkg --verify`` reported."""

    checks: str
    is_conffile: bool
    #: The path as printed (with `` (strerror)`` after a missing one when that is not ENOENT).
    text: str

    @property
    def is_missing(self) -> bool:
        return self.checks.startswith("missing")

    @property
    def path(self) -> str:
        """The path alone, when it is one dpkg-query -S may be asked about (else empty)."""
        path = re.sub(r" \([^()]*\)$", "", self.text) if self.is_missing else self.text
        return path if is_plain_path(path) else ""

    def describe(self) -> str:
        what = "missing" if self.is_missing else "not a regular file" if self.checks[1] == "M" else "changed"
        return f"{self.text} ({what}{', conffile' if self.is_conffile else ''})"


@dataclass(frozen=True)
class Verification:
    broken: tuple[VerifyLine, ...] = ()
    edited_conffiles: tuple[VerifyLine, ...] = ()
    unreadable: tuple[VerifyLine, ...] = ()
    rejected: int = 0


def parse_verify(text: str) -> Verification:
    """Sort ``dpkg --verify`` lines by the rules of the module docstring."""
    broken: list[VerifyLine] = []
    edited: list[VerifyLine] = []
    unreadable: list[VerifyLine] = []
    rejected = 0
    for raw in text.splitlines()[:MAX_VERIFY_LINES]:
        match = _VERIFY_LINE.match(raw)
        if match is None:
            rejected += bool(raw.strip())
            continue
        line = VerifyLine(match.group(1), match.group(2) == "c", match.group(3))
        if line.is_missing:
            broken.append(line)
        elif line.checks[2] == "5" or line.checks[1] == "M":
            (edited if line.is_conffile else broken).append(line)
        elif line.checks[2] == "?":
            unreadable.append(line)
        else:
            rejected += 1
    return Verification(tuple(broken), tuple(edited), tuple(unreadable), rejected)


# -- the probe -------------------------------------------------------------------------------------


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)


def _listing(lines: Sequence[VerifyLine]) -> str:
    text = "\n".join(line.describe() for line in lines[:MAX_LISTED])
    more = len(lines) - MAX_LISTED
    return cap_evidence(text + (f"\n... and {more} more" if more > 0 else ""))


def shared_answers() -> RunShared[CommandMemo]:
    """dpkg's answers shared by the dpkg probes of one run: the components one package ships (every
    ``systemd-*`` service) ask dpkg once, not once each (``--verify`` hashes every file)."""
    return shared_commands("dpkg answers")


def probe_packages(transport: Transport, component: Component,
                   answers: RunShared[CommandMemo] | None = None,
                   ignored_paths: Sequence[str] = (), *, run_packages: Sequence[str] = (),
                   verify_cache: VerifyCache | None = None) -> ProbeResult:
    """Check ``component.packages`` on the target (rules in the module docstring). ``dpkg --verify``
    findings of paths ``ignored_paths`` (``watch.ignore_paths``) covers are not judged, only counted.
    ``verify_cache``: ``--verify`` answers kept while nothing they looked at changed
    (:mod:`orchestrator.detect.verify_cache`).
    ``run_packages``: every package the run's dpkg probes ask about, so that they share one
    ``dpkg-query`` (one guest process per round instead of one per component: about 0.65 s each
    under TCG, measured); each probe reads its own packages from that answer.

    Raises:
        TransportError: the target cannot be reached.
    """
    queries = _Memoized(transport, answers.get() if answers is not None else CommandMemo(), verify_cache)
    wanted = list(dict.fromkeys(p for p in component.packages if PACKAGE_NAME.match(p)))
    pid = ProbeId(probe_name(component), component.name, IssueKind.PACKAGE_BROKEN,
                  f"packages {' '.join(wanted)}")
    ignored = [p for p in component.packages if not PACKAGE_NAME.match(p)]
    if not wanted:
        return pid.unavailable("no valid Debian package name to ask dpkg about")
    everyone = sorted({*wanted, *(p for p in run_packages if PACKAGE_NAME.match(p))})
    asked = _ask_states(queries, pid, wanted, everyone)
    if isinstance(asked, ProbeResult):
        return asked
    states, rejected = asked
    found = _Findings()
    if ignored:
        found.evidence["ignored_names"] = cap_evidence(" ".join(ignored), 512)
    if rejected:
        found.evidence["rejected_lines"] = str(rejected)
    in_place = _judge_states(wanted, states, found)
    if in_place:
        verdict = _verify(queries, in_place, found, ignored_paths)
        if verdict is not None and not found.problems:
            return pid.unavailable(verdict, found.evidence)
        if verdict is not None:
            found.evidence["verify"] = cap_evidence(verdict, 512)
    if not found.problems:
        return pid.passed(f"{component.name}: {len(wanted)} packages installed and intact", found.evidence)
    found.evidence["remedy"] = cap_evidence("\n".join(dict.fromkeys(found.remedies)), 1024)
    more = f" (and {len(found.problems) - 1} more problems)" if len(found.problems) > 1 else ""
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    return pid.failed(severity, cap_evidence(f"{component.name}: {found.problems[0]}{more}", 1024),
                      found.evidence)


class _Memoized:
    """The transport as the dpkg probe's two read-only queries see it: answered once per run, and
    ``--verify`` answers reused across runs while nothing they looked at changed (``cache``)."""

    def __init__(self, transport: Transport, memo: CommandMemo, cache: VerifyCache | None = None) -> None:
        self.transport, self.memo, self.cache = transport, memo, cache

    def run_command(self, argv: Sequence[str], *, timeout: float) -> CommandResult | None:
        return self.memo.run(tuple(argv), lambda: run_command(self.transport, argv, timeout=timeout))

    def verify(self, binaries: Sequence[str]) -> tuple[CommandResult | None, bool]:
        """``dpkg --verify -- binaries`` (and whether the answer was kept from an earlier run).

        Raises: CommandTimeoutError, TransportError."""
        argv = verify_argv(binaries)

        def run() -> CommandResult | None:
            return run_verify(self.transport, binaries)

        cache = self.cache
        if cache is None:
            return self.memo.run(tuple(argv), run), False
        return self.memo.run(("cached", *argv), lambda: cache.verify(binaries, run))


def run_verify(transport: Transport, binaries: Sequence[str]) -> CommandResult | None:
    """``dpkg --verify -- binaries`` (None: no dpkg on the host).

    Raises: CommandTimeoutError, TransportError."""
    return run_command(transport, verify_argv(binaries), timeout=VERIFY_TIMEOUT_S)


def _ask_states(
    queries: _Memoized, pid: ProbeId, wanted: Sequence[str], asked: Sequence[str],
) -> tuple[dict[str, list[Installed]], int] | ProbeResult:
    """dpkg-query's answer about ``asked`` (``wanted`` and the run's other packages), parsed for
    ``wanted``; an unavailable result when it cannot be asked."""
    try:
        query = queries.run_command(status_argv(asked), timeout=QUERY_TIMEOUT_S)
    except CommandTimeoutError:
        return pid.unavailable(f"dpkg-query did not answer within {QUERY_TIMEOUT_S:g} s")
    if query is None:
        return pid.unavailable("dpkg-query is not installed on the target (not a Debian system?)")
    if query.exit_status not in _QUERY_OK:
        return pid.unavailable(f"dpkg-query exited {query.exit_status}", {"output": command_output(query)})
    return parse_status(query.stdout_text, wanted)


def _judge_states(wanted: Sequence[str], states: dict[str, list[Installed]], found: _Findings) -> list[str]:
    """Record the state problems; return the binary names whose files are on the host (to verify)."""
    lines = [i for name in wanted for i in states.get(name, [])]
    found.evidence["packages"] = cap_evidence(", ".join(i.describe() for i in lines) or "(none)", 2048)
    in_place: list[str] = []
    for name in wanted:
        present = [i for i in states.get(name, []) if i.status not in _GONE]
        if not present:
            found.problems.append(f"package {name} is not installed")
            found.remedies.append(f"apt-get install {name}")
            continue
        for item in present:
            in_place.append(item.binary)
            if item.status in _HALF or item.needs_reinstall:
                found.problems.append(f"package {item.describe()}")
                found.remedies += ["dpkg --configure -a", f"apt-get install --reinstall {item.binary}"]
    return in_place


def _verify(queries: _Memoized, binaries: Sequence[str], found: _Findings,
            ignored: Sequence[str] = ()) -> str | None:
    """Run dpkg --verify and record its findings; a string says why it could not run."""
    try:
        result, reused = queries.verify(binaries)
    except CommandTimeoutError:
        return f"dpkg --verify did not finish within {VERIFY_TIMEOUT_S:g} s"
    if reused:
        found.evidence["verify_reused"] = "no packaged file changed since this host's last dpkg --verify"
    if result is None:
        return "dpkg is not installed on the target"
    # Exit 1: a package it was given is not installed (it changed since dpkg-query); the others
    # are verified all the same. 2 and more: dpkg failed.
    if result.exit_status not in _QUERY_OK:
        found.evidence["verify_output"] = command_output(result, 1024)
        return f"dpkg --verify exited {result.exit_status}"
    checked = _without_ignored(parse_verify(result.stdout_text), ignored, found)
    if result.stdout_dropped:
        found.evidence["verify_truncated"] = f"{result.stdout_dropped} bytes of dpkg --verify output not read"
    if checked.rejected:
        found.evidence["verify_rejected_lines"] = str(checked.rejected)
    if checked.edited_conffiles:
        found.evidence["edited_conffiles"] = _listing(checked.edited_conffiles)
    if checked.unreadable:
        found.evidence["unreadable_files"] = _listing(checked.unreadable)
    if checked.broken:
        found.evidence["broken_files"] = _listing(checked.broken)
        first = checked.broken[0]
        count = len(checked.broken)
        found.problems.append(f"packaged file {first.describe()}" if count == 1
                              else f"{count} packaged files missing or changed, first {first.describe()}")
        found.remedies += _reinstall(queries.transport, checked.broken, binaries)
    return None


def _without_ignored(checked: Verification, ignored: Sequence[str], found: _Findings) -> Verification:
    """``checked`` without the files ``ignored`` covers; those are named in the evidence."""
    if not ignored:
        return checked

    def is_ignored(line: VerifyLine) -> bool:
        return bool(line.path) and covering(line.path, ignored) is not None

    lines = (*checked.broken, *checked.edited_conffiles, *checked.unreadable)
    dropped = [line for line in lines if is_ignored(line)]
    if not dropped:
        return checked
    found.evidence["ignored"] = _listing(dropped)
    return Verification(tuple(x for x in checked.broken if not is_ignored(x)),
                        tuple(x for x in checked.edited_conffiles if not is_ignored(x)),
                        tuple(x for x in checked.unreadable if not is_ignored(x)), checked.rejected)


def _reinstall(transport: Transport, broken: Sequence[VerifyLine], binaries: Sequence[str]) -> list[str]:
    """The reinstall commands for ``broken`` files: by the packages ``dpkg-query -S`` says own them,
    else for every package verified."""
    paths = [line.path for line in broken if line.path][:MAX_LISTED]
    owners: dict[str, str] = {}
    if paths:
        try:
            search = run_command(transport, search_argv(paths), timeout=QUERY_TIMEOUT_S)
        except CommandTimeoutError:
            search = None
        owners = parse_dpkg_search(search.stdout_text) if search is not None else {}
    remedies = []
    for line in broken:
        packages = " ".join(o.strip() for o in owners[line.path].split(",")) if line.path in owners \
            else " ".join(binaries)
        force = " -o Dpkg::Options::=--force-confmiss" if line.is_conffile and line.is_missing else ""
        remedies.append(f"apt-get install --reinstall{force} {packages}")
    return remedies
