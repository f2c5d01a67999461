"""``sysdir:<path>`` probes: owner and mode of the paths every service, login and ``sudo`` rely on.

Every failure is PERMISSIONS and critical (a required path that is gone is PATH_MISSING, critical),
because each rule below guards something that breaks outright or leaks a secret:

- ``/tmp``, ``/var/tmp``: a directory of mode 1777 owned by root. Not writable by everyone, every
  service and user that makes a temporary file fails; not sticky, any user can delete or replace
  another's files (a classic privilege escalation); owned by someone else, that user controls it.
- ``/etc/shadow``, ``/etc/gshadow``: owned by root, group root or shadow, nothing for others. Others
  reading them have every password hash to crack; a non-root owner can set any password.
- ``/etc/passwd``, ``/etc/group``: owned by root, not writable by group or others (a writer makes
  any account uid 0), and readable by others: without it no non-root process can look up a user,
  which breaks logins and every service running as its own user.
- ``/etc/sudoers``: what sudo itself checks before it reads the file (``sudo_check_secure`` in sudo's
  lib/util/secure_path.c): a regular file owned by root, not writable by others, and writable by its
  group only if that group is root. Otherwise sudo prints "... is world writable" and refuses to run
  at all: nobody can become root through it.
- ``/etc/sudoers.d``: the same rule for the directory (sudo ignores the whole directory otherwise)
  and for each drop-in sudo reads (names without ``.`` and not ending in ``~``; sudo skips an
  insecure one). Either way the rights granted there vanish, often an admin's only way to root
  (cloud-init writes its user's rule there).
- ``/``, ``/etc``, ``/usr``, ``/var``: directories owned by root, not writable by group or others
  (anyone could replace system files), and searchable by others (otherwise every non-root service
  fails to reach its files).

``/etc/gshadow``, ``/etc/sudoers`` and ``/etc/sudoers.d`` are optional (no sudo installed): missing,
they pass. A symlink where a file is expected makes the probe unavailable: what it points to is not
looked at.

How each path is read: files and ``/etc/sudoers.d`` with one agent ``manifest`` call each (lstat; all
of them prefetched in the Detector's one batched agent call). The directories ``/``, ``/etc``,
``/usr``, ``/var``, ``/tmp`` and ``/var/tmp`` cannot go through ``manifest``: it walks a directory
recursively and hashes every file below it (and gives up past 50,000 entries), so they are read with
``stat -L`` on the target, which follows a symlinked ``/tmp`` to what services actually get. Nothing
is ever changed here.

How a failure is repaired (a PERMISSIONS issue of any rule but ``/``; a missing path stays reported):
through a troubleshooting VM like a component's issue (:func:`~orchestrator.pipeline.triage.
is_system_path_issue`), by metadata alone for files and directories alike. The capture takes the
path's own manifest entry (type, mode, owner and, for a file, the sha256 the agent computes on the
target), never what a directory holds nor a file's content: the content of ``/etc/shadow`` never
leaves the target. The VM's *own* node at that path gets the target's mode and owner; the rule's
``mode``/``owner``/``group`` below are what the generated ``set_meta`` sets; the fix package's
``set_owner_mode`` is checked against the captured entry; the backup keeps metadata only. A file the
VM lacks (no sudo there, no ``/etc/sudoers``) cannot take the mode: that run ends not reproduced.
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi, AgentRead, FileEntry
from orchestrator.detect.common import HOST_COMPONENT, ProbeId, cap_evidence, command_output, run_command
from orchestrator.detect.shared import RunShared
from orchestrator.errors import AgentError, CommandTimeoutError
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PREFIX = "sysdir:"
SUDOERS_DIR = "/etc/sudoers.d"
STAT_TIMEOUT_S = 30.0
#: ``stat`` format: raw mode in hex (type and permission bits, never translated), uid, gid, names;
#: ``:`` separates them because no user or group name may hold one (it separates /etc/passwd fields).
STAT_FORMAT = "%f:%u:%g:%U:%G"
#: Insecure drop-ins listed in the evidence (the rest are counted).
MAX_LISTED = 10
#: Cap of a user or group name (names come from the target); cap_evidence keeps 64 characters of it.
_NAME_MAX = 128


@dataclass(frozen=True)
class PathMeta:
    """What the target said about one path: type, permission bits (with setuid/setgid/sticky), owner."""

    type: str   # "file", "dir", "symlink" or "other"
    mode: int
    uid: int
    gid: int
    owner: str
    group: str
    link: str | None = None

    @classmethod
    def from_entry(cls, entry: FileEntry) -> PathMeta:
        return cls(entry.type, entry.mode & 0o7777, entry.uid, entry.gid,
                   cap_evidence(entry.owner, _NAME_MAX), cap_evidence(entry.group, _NAME_MAX), entry.link)

    def evidence(self) -> dict[str, str]:
        return {"type": self.type, "mode": f"{self.mode:04o}", "owner": f"{self.owner} (uid {self.uid})",
                "group": f"{self.group} (gid {self.gid})"}


Check = Callable[[PathMeta], list[str]]


def _root_owned(meta: PathMeta) -> list[str]:
    return [] if meta.uid == 0 else [f"owned by {meta.owner} (uid {meta.uid}), not root"]


def _no_group_other_write(meta: PathMeta) -> list[str]:
    writers = [who for who, bit in (("group", 0o020), ("others", 0o002)) if meta.mode & bit]
    return [f"writable by {' and '.join(writers)}"] if writers else []


def check_tmp(meta: PathMeta) -> list[str]:
    # setuid/setgid bits on top of 1777 change nothing services notice: not reported.
    problems = _root_owned(meta)
    if meta.mode & 0o1777 != 0o1777:
        missing = [what for what, bit in (("not sticky", 0o1000), ("not writable by others", 0o002))
                   if not meta.mode & bit]
        problems.append(f"mode {meta.mode:04o}, not 1777" + (f" ({', '.join(missing)})" if missing else ""))
    return problems


def check_secret(meta: PathMeta) -> list[str]:
    problems = _root_owned(meta)
    if meta.gid != 0 and meta.group != "shadow":
        problems.append(f"group {meta.group} (gid {meta.gid}), not root or shadow")
    if meta.mode & 0o006:
        problems.append("readable or writable by others")
    return problems


def check_account_db(meta: PathMeta) -> list[str]:
    problems = _root_owned(meta) + _no_group_other_write(meta)
    if not meta.mode & 0o004:
        problems.append("not readable by others")
    return problems


def check_sudoers(meta: PathMeta) -> list[str]:
    """sudo's own rule (sudo_check_secure): root owner, no write for others, group write only for gid 0."""
    problems = _root_owned(meta)
    if meta.mode & 0o002:
        problems.append("world writable")
    elif meta.mode & 0o020 and meta.gid != 0:
        problems.append(f"writable by group {meta.group} (gid {meta.gid}), not root")
    return problems


def check_system_dir(meta: PathMeta) -> list[str]:
    problems = _root_owned(meta) + _no_group_other_write(meta)
    if not meta.mode & 0o001:
        problems.append("not searchable by others")
    return problems


@dataclass(frozen=True)
class PathRule:
    """One watched path: what it must be, what breaks otherwise, and how to put it right."""

    path: str
    type: str          # "file" or "dir"
    check: Check
    expected: str
    remedy: str
    consequence: str
    is_required: bool = True
    #: Read with ``stat`` on the target instead of the agent (directories ``manifest`` would walk).
    is_statted: bool = False
    #: What the remedy sets it to (mode, owner, group): the one place a repair reads them from (the
    #: ``state`` generator's ``set_meta``, for files and directories alike).
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"


def _dir_rule(path: str) -> PathRule:
    return PathRule(path, "dir", check_system_dir,
                    "a directory owned by root, not writable by group or others, searchable by others (0755)",
                    f"chown root:root {path} && chmod 0755 {path}",
                    "anyone able to write it can replace system files; if others cannot search it, every "
                    "non-root service fails", is_statted=True)


def _tmp_rule(path: str) -> PathRule:
    return PathRule(path, "dir", check_tmp, "a directory of mode 1777 owned by root",
                    f"chown root:root {path} && chmod 1777 {path}",
                    "services and users that create temporary files fail, or users can delete and replace "
                    "each other's files", is_statted=True, mode=0o1777)


def _secret_rule(path: str, *, is_required: bool) -> PathRule:
    return PathRule(path, "file", check_secret,
                    "a file owned by root, group root or shadow, no access for others (0640 root:shadow)",
                    f"chown root:shadow {path} && chmod 0640 {path}",
                    "password hashes leak, or someone other than root can change them", is_required,
                    mode=0o640, group="shadow")


def _account_rule(path: str) -> PathRule:
    return PathRule(path, "file", check_account_db,
                    "a file owned by root, not writable by group or others, readable by all (0644)",
                    f"chown root:root {path} && chmod 0644 {path}",
                    "a writer can make any account root; unreadable, user lookups, logins and services "
                    "running as their own user fail", mode=0o644)


SUDOERS_RULE = PathRule("/etc/sudoers", "file", check_sudoers,
                        "a file owned by root, not writable by others, group-writable only for group root "
                        "(0440 root:root)", "chown root:root /etc/sudoers && chmod 0440 /etc/sudoers",
                        "sudo refuses to run: nobody can become root through it", is_required=False,
                        mode=0o440)
SUDOERS_DIR_RULE = PathRule(SUDOERS_DIR, "dir", check_sudoers,
                            "a directory owned by root and not writable by others (0755 root:root), each "
                            "drop-in a file owned by root and not writable by others (0440 root:root)",
                            f"chown root:root {SUDOERS_DIR} && chmod 0755 {SUDOERS_DIR}; for each listed "
                            f"drop-in: chown root:root FILE && chmod 0440 FILE",
                            "sudo skips it, so the rights it grants (often an admin's only way to root) "
                            "are gone", is_required=False)

#: Every watched path, in plan order.
RULES: dict[str, PathRule] = {rule.path: rule for rule in (
    _tmp_rule("/tmp"), _tmp_rule("/var/tmp"),  # noqa: S108 - checked, never written to
    _secret_rule("/etc/shadow", is_required=True), _secret_rule("/etc/gshadow", is_required=False),
    _account_rule("/etc/passwd"), _account_rule("/etc/group"),
    SUDOERS_RULE, SUDOERS_DIR_RULE,
    _dir_rule("/"), _dir_rule("/etc"), _dir_rule("/usr"), _dir_rule("/var"),
)}


def probe_name(path: str) -> str:
    return f"{PREFIX}{path}"


def _pid(path: str) -> ProbeId:
    return ProbeId(probe_name(path), HOST_COMPONENT, IssueKind.PERMISSIONS, path)


def first_reads(path: str) -> tuple[AgentRead, ...]:
    """The agent read the probe of ``path`` starts with (batched by the Detector); none for the
    directories read with ``stat``."""
    return () if RULES[path].is_statted else (("manifest", {"paths": [path]}),)


# -- reading -------------------------------------------------------------------------------------
def stat_argv(path: str) -> list[str]:
    return ["stat", "-L", f"--format={STAT_FORMAT}", "--", path]


#: The statted directories, in one ``stat`` (one guest process instead of one per directory: about
#: 0.6 s each under TCG, measured). ``%n`` first, tab-separated: a missing path prints no line, so
#: lines are matched by name, never by position. Only the table's own paths are asked (no tab, no
#: newline in them).
def stat_all_argv(paths: tuple[str, ...]) -> list[str]:
    return ["stat", "-L", f"--format=%n\t{STAT_FORMAT}", "--", *paths]


StatAnswers = dict[str, "PathMeta | str | None"]


def statted_paths() -> tuple[str, ...]:
    return tuple(path for path, rule in RULES.items() if rule.is_statted)


def stat_all(transport: Transport, paths: tuple[str, ...]) -> StatAnswers:
    """``stat -L`` of every path at once: per path its metadata, None when it does not exist, or why
    it cannot be known (as :func:`stat_path`).

    Raises:
        TransportError: the target cannot be reached.
    """
    try:
        result = run_command(transport, stat_all_argv(paths), timeout=STAT_TIMEOUT_S)
    except CommandTimeoutError:
        return dict.fromkeys(paths, f"stat did not finish within {STAT_TIMEOUT_S:g} s")
    if result is None:
        return dict.fromkeys(paths, "stat is not installed on the target")
    found: StatAnswers = {}
    for line in result.stdout_text.split("\n"):
        name, tab, rest = line.partition("\t")
        if tab and name in paths and name not in found and (meta := parse_stat(rest)) is not None:
            found[name] = meta
    for path in paths:
        if path in found:
            continue
        # coreutils' message names the path; under a translated locale it is unavailable instead.
        missing = f"'{path}': No such file or directory".encode()
        found[path] = None if missing in result.stderr else \
            f"stat {path} exited {result.exit_status}: {command_output(result, 512)}"
    return found


def shared_stats(transport: Transport) -> RunShared[StatAnswers]:
    """The statted directories every probe of one detector run shares (one ``stat`` per run)."""
    paths = statted_paths()
    return RunShared("system directories", lambda: stat_all(transport, paths))


def parse_stat(text: str) -> PathMeta | None:
    """The first line of :data:`STAT_FORMAT` output; None when it is not one (garbled or hostile)."""
    fields = text.split("\n", 1)[0].split(":")
    if len(fields) != 5:
        return None
    raw, uid, gid, owner, group = fields
    if not (_is_number(raw, "0123456789abcdef", 8) and _is_number(uid, "0123456789", 10)
            and _is_number(gid, "0123456789", 10)):
        return None
    mode = int(raw, 16)
    kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
            else "symlink" if stat.S_ISLNK(mode) else "other")
    return PathMeta(kind, stat.S_IMODE(mode), int(uid), int(gid), cap_evidence(owner, _NAME_MAX),
                    cap_evidence(group, _NAME_MAX))


def _is_number(text: str, digits: str, width: int) -> bool:
    return 0 < len(text) <= width and all(ch in digits for ch in text)


def stat_path(transport: Transport, path: str) -> PathMeta | str | None:
    """``stat -L`` of ``path``: its metadata, None when it does not exist, or why it cannot be known.

    Raises:
        TransportError: the target cannot be reached.
    """
    try:
        result = run_command(transport, stat_argv(path), timeout=STAT_TIMEOUT_S)
    except CommandTimeoutError:
        return f"stat {path} did not finish within {STAT_TIMEOUT_S:g} s"
    if result is None:
        return "stat is not installed on the target"
    if result.succeeded and (meta := parse_stat(result.stdout_text)) is not None:
        return meta
    # coreutils' message; under a translated locale a missing path is reported unavailable instead.
    if not result.succeeded and b"No such file or directory" in result.stderr:
        return None
    return f"stat {path} exited {result.exit_status}: {command_output(result, 512)}"


def manifest_path(agent: AgentApi, path: str) -> tuple[FileEntry, ...] | str | None:
    """The manifest of ``path`` (lstat; a directory with what is below it), None when it does not
    exist, or why the agent could not tell."""
    try:
        manifest = agent.manifest([path])
    except AgentError as exc:
        return f"the agent could not look at {path}: {exc.message}"
    if path in manifest.missing:
        return None
    below = path.rstrip("/") + "/"
    entries = tuple(e for e in manifest.entries if e.path == path or e.path.startswith(below))
    if not any(e.path == path for e in entries):
        return f"the agent's manifest does not list {path}"
    return entries


# -- deciding ------------------------------------------------------------------------------------
def evaluate(rule: PathRule, observed: PathMeta | str | None) -> ProbeResult:
    """The result for one path (not /etc/sudoers.d: :func:`evaluate_sudoers_dir`): ``observed`` is
    its metadata, None when it does not exist, or why it could not be read."""
    pid = _pid(rule.path)
    if isinstance(observed, str):
        return pid.unavailable(observed)
    expected = {"expected": rule.expected, "remedy": rule.remedy}
    if observed is None:
        if not rule.is_required:
            return pid.passed(f"{rule.path} does not exist (optional)")
        return pid.failed(Severity.CRITICAL, f"{rule.path} does not exist: {rule.consequence}",
                          {**expected, "remedy": _recreate(rule)}, kind=IssueKind.PATH_MISSING)
    if observed.type == "symlink":
        return pid.unavailable(f"{rule.path} is a symlink (to {cap_evidence(observed.link or '?', 256)}); "
                               f"what it points to is not checked", observed.evidence())
    problems = (_wrong_type(rule, observed) or rule.check(observed))
    evidence = observed.evidence()
    if not problems:
        return pid.passed(f"{rule.path} is {observed.type} {observed.mode:04o} "
                          f"{observed.owner}:{observed.group}", evidence)
    evidence.update(expected, problems="; ".join(problems))
    return pid.failed(Severity.CRITICAL, f"{rule.path}: {'; '.join(problems)}: {rule.consequence}", evidence)


def _wrong_type(rule: PathRule, meta: PathMeta) -> list[str]:
    wanted = "a directory" if rule.type == "dir" else "a regular file"
    return [] if meta.type == rule.type else [f"is a {meta.type}, not {wanted}"]


def _recreate(rule: PathRule) -> str:
    if rule.type == "dir":
        return f"mkdir -m {rule.mode:04o} {rule.path}"
    return f"restore {rule.path} from {rule.path}- (the backup the shadow tools keep) or a backup"


def is_read_by_sudo(name: str) -> bool:
    """Whether sudo's ``@includedir`` reads a drop-in of this name (toke.l read_dir_files)."""
    return bool(name) and not name.endswith("~") and "." not in name


def evaluate_sudoers_dir(observed: tuple[FileEntry, ...] | str | None) -> ProbeResult:
    """The result for /etc/sudoers.d from its manifest (the directory and what is in it)."""
    rule = SUDOERS_DIR_RULE
    pid = _pid(rule.path)
    if observed is None or isinstance(observed, str):
        return evaluate(rule, observed)
    top = next(e for e in observed if e.path == rule.path)
    own = evaluate(rule, PathMeta.from_entry(top))
    if not own.ok:
        return own
    # sudo reads regular files only (stat() follows symlinks, so those are files to it too).
    dropins = [e for e in observed if posixpath.dirname(e.path) == rule.path
               and e.type in ("file", "symlink") and is_read_by_sudo(posixpath.basename(e.path))]
    bad, unchecked = [], []
    for entry in dropins:
        meta = PathMeta.from_entry(entry)
        if meta.type == "symlink":
            unchecked.append(entry.path)
        elif problems := check_sudoers(meta):
            bad.append(f"{cap_evidence(entry.path, 256)}: mode {meta.mode:04o} {meta.owner}:{meta.group}: "
                       f"{'; '.join(problems)}")
    evidence = {**own.evidence, "dropins": str(len(dropins))}
    if unchecked:
        evidence["unchecked_symlinks"] = cap_evidence("\n".join(unchecked[:MAX_LISTED]))
    if not bad:
        return pid.passed(f"{rule.path} and its {len(dropins)} drop-ins are safe for sudo", evidence)
    listed = bad[:MAX_LISTED] + ([f"... and {len(bad) - MAX_LISTED} more"] if len(bad) > MAX_LISTED else [])
    evidence.update(expected=rule.expected, remedy=rule.remedy,
                    insecure_dropins=cap_evidence("\n".join(listed)))
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return pid.failed(Severity.CRITICAL, f"{bad[0]}{more}: {rule.consequence}", evidence)


# -- probes --------------------------------------------------------------------------------------
def probe_path(transport: Transport, agent: AgentApi, path: str,
               stats: RunShared[StatAnswers] | None = None) -> ProbeResult:
    """Check one watched path (a key of :data:`RULES`); the statted ones through ``stats`` when given
    (one ``stat`` for all of them per run).

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    rule = RULES[path]
    if rule.is_statted:
        return evaluate(rule, stats.get()[path] if stats is not None else stat_path(transport, path))
    observed = manifest_path(agent, path)
    if path == SUDOERS_DIR:
        return evaluate_sudoers_dir(observed)
    if observed is None or isinstance(observed, str):
        return evaluate(rule, observed)
    return evaluate(rule, PathMeta.from_entry(next(e for e in observed if e.path == path)))
