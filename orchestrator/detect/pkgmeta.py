"""``pkgmeta:<component>``: owners and modes of a component's packaged files against the package itself.

The ``modes`` probe needs a baseline; a host first seen broken has none. dpkg records no modes or
owners (``dpkg --verify`` checks md5sums only): the package's own word on them is in its .deb, the
member headers of its data.tar. So for each of the component's packages, at the version and
architecture dpkg has installed (``dpkg-query``), the probe asks the agent (``deb_meta``) to read the
.deb apt left in :data:`ARCHIVES` for the component's config and unit paths (and what is below them,
as the recursive ``manifest`` the modes and symlinks probes make lists them: one batch answers all
three) and compares what the package ships with their lstat now. The .deb decides which paths a
package ships: what its data.tar does not hold is not judged against it. (The agent reads the data.tar
only as far as the last of those paths that dpkg's list of the installed package names.)

Rules:

- ``dpkg-statoverride`` (:data:`STATOVERRIDE`, ``owner group mode path`` per line) is the admin's
  choice: it replaces the package's owner, group and mode for its path.
- owners are compared by name when the .deb names them (uids differ between hosts), else by id.
- a symlink's mode means nothing: only its type is compared.
- a path whose owner and mode equal the healthy baseline's is the host's known state (a maintainer
  script's chmod, as ssl-cert's on /etc/ssl/private, or an admin's without statoverride): not judged.
- paths ``watch.ignore_paths`` covers are not judged; missing paths neither (other probes see them).
- no .deb of any package in the cache: unavailable (apt-get clean, or installed from elsewhere), with
  the packages, versions and directory named; never an issue.

Failure: IssueKind.PERMISSIONS, critical for vital components, warning otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orchestrator.agent.api import AgentApi, AgentRead, DebEntry, DebMeta, FileEntry, Manifest, manifest_args
from orchestrator.agent.errors import AgentFailedError
from orchestrator.components.ignore import covering
from orchestrator.detect.common import EVIDENCE_MAX, ProbeId, cap_evidence, command_output, run_command
from orchestrator.detect.modes import Recorded, roots
from orchestrator.detect.shared import CommandMemo, RunShared, shared_commands
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.facts.parse import ARCH, DPKG_STATUS, PACKAGE_NAME, VERSION
from orchestrator.model import REPORT_ONLY, Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PREFIX = "pkgmeta:"
#: Where apt keeps the packages it downloaded (the agent reads nowhere else).
ARCHIVES = "/var/cache/apt/archives"
STATOVERRIDE = "/var/lib/dpkg/statoverride"
MAX_STATOVERRIDE_BYTES = 1024 * 1024
#: dpkg-query's own escapes (\t, \n), passed literally as in a shell.
VERSION_FORMAT = r"${binary:Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n"
QUERY_TIMEOUT_S = 60.0
#: Paths asked about per package: the agent's cap (``MAX_DEB_PATHS``).
MAX_PATHS = 4096
#: At most this many differences are listed in the evidence (all are counted).
MAX_LISTED = 20
#: Evidence key of the values to restore, as JSON ``[[path, "0644", owner, group], ...]`` (what the
#: ``state`` repair family reads; the listed differences are for people).
RESTORE_KEY = "package_values"
#: Installed in the sense of "its files are on the host" (a trigger pending changes no file).
_IN_PLACE = frozenset("iWt")


@runtime_checkable
class DebMetaReading(Protocol):
    """An agent that reads a cached .deb's member headers (the real client does)."""

    def deb_meta(self, deb: str, paths: Sequence[str]) -> DebMeta:
        """Raises: AgentError (AgentFailedError ``not_found``: no such file), TransportError."""
        ...


class KeptDebMeta(Protocol):
    """Answers kept beyond one Detector (:class:`~orchestrator.detect.answer_store.AnswerStore`)."""

    def deb_meta(self, deb: str, paths: Sequence[str]) -> DebMeta | None: ...

    def keep_deb_meta(self, deb: str, paths: Sequence[str], meta: DebMeta) -> None: ...


@dataclass(frozen=True)
class InstalledDeb:
    name: str
    version: str
    arch: str

    @property
    def deb(self) -> str:
        """The file apt downloads it as: the epoch's ':' is written %3a."""
        return f"{ARCHIVES}/{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.arch})"


@dataclass(frozen=True)
class Expected:
    """What a path should look like, and who says so (the package, or dpkg-statoverride)."""

    type: str
    mode: int
    owner: str
    group: str
    source: str


def probe_name(component: Component) -> str:
    return f"{PREFIX}{component.name}"


def shared_answers() -> RunShared[CommandMemo]:
    """The run's ``dpkg-query`` of every package its pkgmeta probes ask about, asked once per round."""
    return shared_commands("pkgmeta versions")


def is_planned(component: Component) -> bool:
    return bool(component.packages) and bool(roots(component))


def first_reads(component: Component) -> tuple[AgentRead, ...]:
    """The modes and symlinks probes' manifest, and the statoverride file."""
    return (("manifest", manifest_args(roots(component))),
            ("read_file", {"path": STATOVERRIDE, "max_bytes": MAX_STATOVERRIDE_BYTES}))


def query_argv(packages: Sequence[str]) -> list[str]:
    return ["dpkg-query", "-W", "-f", VERSION_FORMAT, "--", *packages]


def parse_installed(text: str, wanted: Sequence[str]) -> list[InstalledDeb]:
    """The ``wanted`` packages whose files are on the host, in ``wanted``'s order; lines that are not
    a package line are skipped."""
    found: dict[str, list[InstalledDeb]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        binary, version, arch, abbrev = fields
        name = binary.partition(":")[0]
        if (name in wanted and PACKAGE_NAME.match(name) and VERSION.match(version) and ARCH.match(arch)
                and DPKG_STATUS.match(abbrev.strip()) and abbrev[1] in _IN_PLACE):
            found.setdefault(name, []).append(InstalledDeb(name, version, arch))
    return [one for name in wanted for one in found.get(name, [])]


def parse_statoverride(text: str) -> dict[str, tuple[str, str, int]]:
    """path → (owner, group, mode) of ``/var/lib/dpkg/statoverride``; malformed lines are skipped
    (dpkg itself refuses to run with them, so they do not stand)."""
    overrides: dict[str, tuple[str, str, int]] = {}
    for line in text.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4 and fields[3].startswith("/") and fields[2].isdigit():
            mode = int(fields[2], 8) if set(fields[2]) <= set("01234567") else -1
            if 0 <= mode <= 0o7777:
                overrides[fields[3]] = (fields[0], fields[1], mode)
    return overrides


def _id_name(name: str, ident: int) -> str:
    return name or str(ident)


def expected_of(path: str, shipped: DebEntry, package: InstalledDeb,
                overrides: Mapping[str, tuple[str, str, int]]) -> Expected:
    override = overrides.get(path)
    if override is not None:  # "#1000" is an id: compared with the uid, as a bare number is
        return Expected(shipped.type, override[2], override[0].lstrip("#"), override[1].lstrip("#"),
                        "dpkg-statoverride sets")
    return Expected(shipped.type, shipped.mode, _id_name(shipped.uname, shipped.uid),
                    _id_name(shipped.gname, shipped.gid), f"package {package.name} {package.version} ships")


def differs(now: FileEntry, expected: Expected) -> bool:
    if now.type != expected.type:
        return True
    if now.type == "symlink":
        return False
    owner = now.owner if not expected.owner.isdigit() else str(now.uid)
    group = now.group if not expected.group.isdigit() else str(now.gid)
    return (now.mode, owner, group) != (expected.mode, expected.owner, expected.group)


def _describe(now: FileEntry, expected: Expected) -> str:
    if now.type != expected.type:
        return f"{now.path}: {now.type}, {expected.source} a {expected.type}"
    return (f"{now.path}: mode {now.mode:04o} {now.owner}:{now.group}, {expected.source} "
            f"{expected.mode:04o} {expected.owner}:{expected.group}")


def _as_baseline(now: FileEntry, recorded: Recorded) -> bool:
    return recorded.get(now.path) == (now.type, now.mode, now.uid, now.gid)


def evaluate(component: Component, now: Mapping[str, FileEntry],
             shipped: Sequence[tuple[InstalledDeb, DebMeta]], *,
             overrides: Mapping[str, tuple[str, str, int]], recorded: Recorded,
             notes: Mapping[str, str] | None = None) -> ProbeResult:
    """Compare ``now`` (path → lstat) with what the packages ship (the first package shipping a path
    decides it), by the rules of the module docstring."""
    pid = ProbeId(probe_name(component), component.name, IssueKind.PERMISSIONS, component.name)
    expected: dict[str, Expected] = {}
    for package, meta in shipped:
        for path, entry in meta.by_path().items():
            expected.setdefault(path, expected_of(path, entry, package, overrides))
    changed = [(now[p], e) for p, e in sorted(expected.items()) if p in now and differs(now[p], e)]
    known = [(entry, e) for entry, e in changed if _as_baseline(entry, recorded)]
    changed = [(entry, e) for entry, e in changed if not _as_baseline(entry, recorded)]
    evidence = {"compared": str(sum(p in now for p in expected)),
                "packages": ", ".join(p.describe() for p, _ in shipped), **(notes or {})}
    if known:
        evidence["as_baseline"] = cap_evidence("\n".join(_describe(*c) for c in known[:MAX_LISTED]))
    if not changed:
        return pid.passed(f"{component.name}: owners and modes as its packages ship them", evidence)
    listed = [_describe(*c) for c in changed]
    more = len(listed) - MAX_LISTED
    evidence["changed"] = cap_evidence("\n".join(listed[:MAX_LISTED])
                                       + (f"\n... and {more} more" if more > 0 else ""))
    evidence[RESTORE_KEY] = _restore_values(changed)
    path, first = changed[0][0].path, changed[0][1]
    evidence["remedy"] = (f"chown {first.owner}:{first.group} {path} && chmod {first.mode:04o} "
                          f"{path} (and the same for each path listed), or record an intended "
                          "change with dpkg-statoverride --update --add")
    opened = [now.path for now, e in changed if opens_access(now, e)]
    if not opened:
        # Without a baseline an owner or a tighter mode that differs from the package may well be
        # intended (a config directory handed to a service account): said, never repaired on its
        # own, and it blocks no repair of the component's real faults.
        evidence[REPORT_ONLY] = ("differs from the package but opens nothing to every user and adds no "
                                 "set-id bit: reported; record it with dpkg-statoverride or a new baseline")
        return pid.failed(Severity.WARNING, f"{component.name}: {len(changed)} path(s) differ in owner or "
                          f"mode from what the package ships (first: {path})", evidence)
    evidence["opened"] = cap_evidence("\n".join(opened[:MAX_LISTED]))
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    return pid.failed(severity, f"{component.name}: {len(changed)} path(s) differ in owner or mode from "
                      f"what the package ships, {len(opened)} writable by every user or given a set-id "
                      f"bit (first: {opened[0]})", evidence)


def opens_access(now: FileEntry, expected: Expected) -> bool:
    """Whether ``now`` is writable by every user where the package's is not (a directory with the
    sticky bit excepted, as /tmp), or carries a set-id bit the package does not set: no admin means
    that, so it is a fault whatever a baseline would say."""
    if now.type == "symlink":
        return False
    world_writable = bool(now.mode & 0o002) and not expected.mode & 0o002 and not (
        now.type == "dir" and now.mode & 0o1000)
    return world_writable or bool(now.mode & 0o6000 & ~expected.mode)


def _restore_values(changed: Sequence[tuple[FileEntry, Expected]]) -> str:
    """The listed paths whose type is right (set_meta cannot change a type), as long as the JSON
    stays within one evidence string: never cut mid-way, so it always parses."""
    values: list[list[str]] = []
    for now, expected in changed[:MAX_LISTED]:
        if now.type != expected.type or now.type == "symlink":
            continue
        one = [now.path, f"{expected.mode:04o}", expected.owner, expected.group]
        if len(json.dumps([*values, one])) > EVIDENCE_MAX:
            break
        values.append(one)
    return json.dumps(values)


class DebMetaCache:
    """``deb_meta`` answers of one host, for a Detector's lifetime: apt names a cached .deb by package,
    version and architecture, so the same file name and paths get the same answer (decompressing a
    data.tar under TCG costs a second or more per package, and a repair runs a dozen probe rounds).
    With ``kept`` (the host's :class:`~orchestrator.detect.answer_store.AnswerStore`), answers also
    outlive the Detector."""

    def __init__(self, kept: KeptDebMeta | None = None) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, tuple[str, ...]], DebMeta | AgentFailedError] = {}
        self._kept = kept

    def read(self, agent: DebMetaReading, deb: str, paths: Sequence[str]) -> DebMeta:
        """Raises: what ``agent.deb_meta`` raises. "No such file" is kept like an answer (a Detector
        lives for one run or one daemon cycle), but never on disk; any other error is not: the next
        round asks again."""
        key = (deb, tuple(paths))
        with self._lock:
            kept = self._answers.get(key)
        if isinstance(kept, AgentFailedError):
            raise kept
        if kept is not None:
            return kept
        stored = self._kept.deb_meta(deb, paths) if self._kept is not None else None
        if stored is not None:
            with self._lock:
                self._answers[key] = stored
            return stored
        try:
            answer = agent.deb_meta(deb, paths)
        except AgentFailedError as exc:
            if exc.code == "not_found":
                with self._lock:
                    self._answers[key] = exc
            raise
        with self._lock:
            self._answers[key] = answer
        if self._kept is not None:
            self._kept.keep_deb_meta(deb, paths, answer)
        return answer


def probe_pkgmeta(transport: Transport, agent: AgentApi, component: Component,
                  ignored: Sequence[str] = (), recorded: Recorded | None = None, *,
                  answers: RunShared[CommandMemo] | None = None, run_packages: Sequence[str] = (),
                  debs: DebMetaCache | None = None) -> ProbeResult:
    """``answers`` and ``run_packages``: the run's dpkg-query of every package its pkgmeta probes ask
    about, asked once per round (as the dpkg probes share theirs); ``debs``: answers kept across rounds.

    Raises: TransportError: the target cannot be reached (an agent error is unavailable)."""
    pid = ProbeId(probe_name(component), component.name, IssueKind.PERMISSIONS, component.name)
    if not isinstance(agent, DebMetaReading):
        return pid.unavailable("the agent cannot read .deb files")
    memo = answers.get() if answers is not None else CommandMemo()
    installed = _installed(transport, pid, component, memo, run_packages)
    if isinstance(installed, ProbeResult):
        return installed
    host = _read_host(agent, pid, component)
    if isinstance(host, ProbeResult):
        return host
    manifest, overrides = host
    now = {e.path: e for e in manifest.entries if covering(e.path, ignored) is None}
    paths = sorted(now)[:MAX_PATHS]
    if not paths:
        return pid.passed(f"{component.name}: none of its paths exists", {"compared": "0"})
    shipped: list[tuple[InstalledDeb, DebMeta]] = []
    unread: list[str] = []
    for package in installed:
        try:
            shipped.append((package, (debs or DebMetaCache()).read(agent, package.deb, paths)))
        except AgentFailedError as exc:
            unread.append(f"{package.describe()}: " + (f"no {package.deb.rpartition('/')[2]} in {ARCHIVES}"
                                                       if exc.code == "not_found" else exc.message))
        except AgentError as exc:
            unread.append(f"{package.describe()}: {exc.message}")
    if not shipped:
        return pid.unavailable(f"no package file to compare with: {'; '.join(unread)}")
    notes = {}
    if unread:
        notes["unchecked_packages"] = cap_evidence("\n".join(unread), 2048)
    if len(now) > MAX_PATHS:
        notes["not_compared"] = f"{len(now) - MAX_PATHS} paths past the first {MAX_PATHS}"
    return evaluate(component, now, shipped, overrides=overrides, recorded=recorded or {}, notes=notes)


def _read_host(agent: AgentApi, pid: ProbeId, component: Component
               ) -> tuple[Manifest, dict[str, tuple[str, str, int]]] | ProbeResult:
    """The component's paths now and the statoverrides, or an unavailable result."""
    try:
        manifest = agent.manifest(roots(component))
    except AgentError as exc:
        return pid.unavailable(f"manifest failed: {exc.message}")
    try:
        return manifest, parse_statoverride(_read_statoverride(agent))
    except AgentError as exc:
        # Without the overrides an admin's choice would read as a fault.
        return pid.unavailable(f"the agent could not read {STATOVERRIDE}: {exc.message}")


def _installed(transport: Transport, pid: ProbeId, component: Component, memo: CommandMemo,
               run_packages: Sequence[str]) -> list[InstalledDeb] | ProbeResult:
    wanted = [p for p in dict.fromkeys(component.packages) if PACKAGE_NAME.match(p)]
    if not wanted:
        return pid.unavailable("no valid Debian package name to ask dpkg about")
    argv = query_argv(sorted({*wanted, *(p for p in run_packages if PACKAGE_NAME.match(p))}))
    try:
        query = memo.run(tuple(argv), lambda: run_command(transport, argv, timeout=QUERY_TIMEOUT_S))
    except CommandTimeoutError:
        return pid.unavailable(f"dpkg-query did not answer within {QUERY_TIMEOUT_S:g} s")
    if query is None:
        return pid.unavailable("dpkg-query is not installed on the target (not a Debian system?)")
    # Exit 1: some names match nothing (the dpkg probe reports packages that are gone).
    if query.exit_status not in (0, 1):
        return pid.unavailable(f"dpkg-query exited {query.exit_status}", {"output": command_output(query)})
    installed = parse_installed(query.stdout_text, wanted)
    return installed or pid.unavailable(f"none of {', '.join(wanted)} is installed")


def _read_statoverride(agent: AgentApi) -> str:
    """Raises: AgentError other than a missing file (no overrides then)."""
    try:
        data = agent.read_file(STATOVERRIDE, max_bytes=MAX_STATOVERRIDE_BYTES)
    except AgentFailedError as exc:
        if exc.code == "not_found":
            return ""
        raise
    return data.decode("utf-8", "surrogateescape")
