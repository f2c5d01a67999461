"""``writable:<path>`` probes: a directory the component's unit must write to (``StateDirectory=``,
``LogsDirectory=``, ``ReadWritePaths=``) exists, is a directory, and its user can write into it.

Rules, in order (each failure is critical for a vital component, a warning otherwise):

- the path does not exist → PATH_MISSING;
- it is a symlink → PATH_MISSING ("a directory is expected; it points elsewhere"), except systemd's own
  ``DynamicUser=`` layout (``/var/lib/foo -> private/foo``), which passes: systemd made it and
  manages it at every start;
- it is anything else that is not a directory → PATH_MISSING;
- the unit runs as root (``Component.user`` empty, ``root`` or uid 0): nothing more to check;
- a directory on the way (``/var``, ``/var/lib``) the user cannot search (x) → PERMISSIONS;
- the user cannot create files in it (w and x) → PERMISSIONS.

Permissions are decided as the kernel does, by the first class that applies: the owner's bits when
the user owns the directory, else the group's bits when one of its groups owns it, else the others'
bits (a directory of mode 0570 owned by the user is *not* writable by it, whatever its group may
do). The user's groups are those systemd gives the process: ``Group=`` (else the user's primary group
from /etc/passwd) plus every /etc/group entry listing the user. ACLs are not seen: a directory
writable only through an ACL entry is reported as not writable. Users that only NSS knows (LDAP,
``DynamicUser=``) are not in /etc/passwd: the probe is then unavailable, not failed.

Why a missing or mis-owned StateDirectory is not a mere warning although systemd creates it and
chowns it to ``User=`` at every start of the unit (LogsDirectory= too; ReadWritePaths= it does not):
the Component does not say which of the three a path is, and a missing ReadWritePaths= directory
stops the unit at its next start (226/NAMESPACE). Even for a StateDirectory, the running service has
lost the directory (or the right to write it) *now*; the cheapest repair, a restart, is in the
evidence for whoever repairs it.

Reads: one non-recursive ``manifest`` of the path and its parents (the probe's first read; a
recursive one would hash every file of a data directory), and /etc/passwd and /etc/group, read once
per detector run for all writable probes (:class:`~orchestrator.detect.shared.RunShared`).
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from orchestrator.agent.api import AgentApi, AgentRead, FileEntry, Manifest, manifest_args
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.detect.shared import RunShared
from orchestrator.detect.symlinks import is_plain_root, link_target
from orchestrator.detect.units import ShowBatch
from orchestrator.errors import AgentError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity

PREFIX = "writable:"
USERS_FILE = "/etc/passwd"
GROUPS_FILE = "/etc/group"
#: A passwd or group file of a few thousand accounts is a few hundred KiB.
MAX_ACCOUNTS_BYTES = 4 * 1024 * 1024
MAX_ACCOUNT_LINES = 100_000
_ID_DIGITS = 10
#: Permission bits of one class (owner, group or others).
_W, _X = 0o2, 0o1
_SYSTEMD_NOTE = ("systemd creates StateDirectory=/LogsDirectory= directories and gives them to User= at "
                 "every start of the unit (a restart repairs those); ReadWritePaths= it does not")


def probe_name(path: str) -> str:
    return f"{PREFIX}{path}"


def checked_paths(path: str) -> list[str]:
    """The directories on the way to ``path`` (``/`` left out) and ``path`` itself."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def first_reads(path: str) -> tuple[AgentRead, ...]:
    """The manifest the probe of ``path`` starts with (batched by the Detector)."""
    if not is_plain_root(path) or path == "/":
        return ()
    return (("manifest", manifest_args(checked_paths(path), recursive=False)),)


# -- accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """/etc/passwd and /etc/group as far as permissions need them."""

    #: user name -> (uid, primary gid)
    users: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: uid -> user name (the first entry of that uid)
    names: Mapping[int, str] = field(default_factory=dict)
    #: group name -> gid
    groups: Mapping[str, int] = field(default_factory=dict)
    #: user name -> gids of the groups that list it as a member
    member_of: Mapping[str, frozenset[int]] = field(default_factory=dict)
    unavailable_reason: str | None = None

    def group_name(self, gid: int) -> str:
        return next((name for name, number in self.groups.items() if number == gid), str(gid))


def _id(text: str) -> int | None:
    # isascii: str.isdigit() also accepts digits like "²" that int() rejects.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= _ID_DIGITS else None


def _account_lines(text: str) -> list[list[str]]:
    # "+"/"-" lines are NIS compat entries, not accounts.
    return [line.split(":") for line in text.splitlines()[:MAX_ACCOUNT_LINES]
            if line and not line.startswith(("#", "+", "-"))]


def parse_accounts(passwd: str, group: str) -> Accounts:
    """Parse both files; malformed lines are skipped, the first entry of a name wins (as getpwnam)."""
    users: dict[str, tuple[int, int]] = {}
    names: dict[int, str] = {}
    for fields in _account_lines(passwd):
        if len(fields) != 7 or not fields[0]:
            continue
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is not None and gid is not None:
            users.setdefault(fields[0], (uid, gid))
            names.setdefault(uid, fields[0])
    groups: dict[str, int] = {}
    member_of: dict[str, set[int]] = {}
    for fields in _account_lines(group):
        if len(fields) != 4 or not fields[0] or (gid := _id(fields[2])) is None:
            continue
        groups.setdefault(fields[0], gid)
        for member in filter(None, (m.strip() for m in fields[3].split(","))):
            member_of.setdefault(member, set()).add(gid)
    return Accounts(users, names, groups, {m: frozenset(g) for m, g in member_of.items()})


def account_reads() -> tuple[AgentRead, ...]:
    return tuple(("read_file", {"path": path, "max_bytes": MAX_ACCOUNTS_BYTES})
                 for path in (USERS_FILE, GROUPS_FILE))


def load_accounts(agent: AgentApi) -> Accounts:
    """Raises: TransportError: the target cannot be reached (an agent failure is an unavailable answer)."""
    texts = []
    for path in (USERS_FILE, GROUPS_FILE):
        try:
            texts.append(agent.read_file(path, max_bytes=MAX_ACCOUNTS_BYTES).decode("utf-8", "replace"))
        except AgentError as exc:
            return Accounts(unavailable_reason=f"the agent could not read {path}: {exc.message}")
    return parse_accounts(*texts)


def shared_accounts(agent: AgentApi) -> RunShared[Accounts]:
    """The accounts every writable probe of one detector run shares (read once per run)."""
    return RunShared("accounts", functools.partial(load_accounts, agent), account_reads())


@dataclass(frozen=True)
class Identity:
    """The credentials systemd runs the unit's processes with."""

    user: str
    uid: int
    gid: int
    groups: frozenset[int]

    def describe(self) -> str:
        return f"{self.user} (uid {self.uid}, groups {' '.join(map(str, sorted(self.groups)))})"


def identity(accounts: Accounts, user: str, group: str) -> Identity | str:
    """Resolve ``User=``/``Group=`` (names or numbers) as systemd would; a string says why not."""
    uid = _id(user)
    name = accounts.names.get(uid, "") if uid is not None else user
    if uid is None:
        if user not in accounts.users:
            return (f"user {user!r} is not in /etc/passwd (an account NSS or DynamicUser= provides?); "
                    f"its permissions cannot be told")
        uid = accounts.users[user][0]
    primary = accounts.users[name][1] if name in accounts.users else None
    if group:
        gid = _id(group)
        gid = accounts.groups.get(group) if gid is None else gid
        if gid is None:
            return f"group {group!r} is not in /etc/group; the unit's permissions cannot be told"
    elif primary is None:
        return f"uid {uid} has no /etc/passwd entry and the unit names no Group="
    else:
        gid = primary
    return Identity(name or str(uid), uid, gid, frozenset({gid} | accounts.member_of.get(name, frozenset())))


# -- the verdict -----------------------------------------------------------------------------------


def runs_as_root(component: Component) -> bool:
    """``User=`` empty (not set, or not known), ``root`` or uid 0: permissions are not in the way."""
    return component.user in ("", "root") or _id(component.user) == 0


def _class_bits(entry: FileEntry, who: Identity) -> tuple[str, int]:
    """The class the kernel judges ``who`` by on ``entry`` (u, g or o) and that class's rwx bits."""
    if entry.uid == who.uid:
        return "u", (entry.mode >> 6) & 0o7
    if entry.gid in who.groups:
        return "g", (entry.mode >> 3) & 0o7
    return "o", entry.mode & 0o7


def _allows(entry: FileEntry, who: Identity, bits: int) -> bool:
    return _class_bits(entry, who)[1] & bits == bits


def _describe(entry: FileEntry) -> str:
    return f"mode {entry.mode:04o}, owner {entry.owner}:{entry.group} ({entry.uid}:{entry.gid})"


def _is_dynamic_user_layout(entry: FileEntry) -> bool:
    """``/var/lib/foo -> private/foo``: how systemd lays out the directories of a DynamicUser= unit."""
    parent, name = posixpath.split(entry.path)
    return link_target(entry.path, entry.link or "") == posixpath.join(parent, "private", name)


def evaluate(
    component: Component, path: str, manifest: Manifest, accounts: Accounts | None,
) -> ProbeResult:
    """The probe's result for ``path`` (rules in the module docstring). ``accounts`` is only needed
    (and only read) when the unit runs as someone other than root."""
    pid = ProbeId(probe_name(path), component.name, IssueKind.PERMISSIONS, path)
    user = component.user or "root"
    evidence = {"user": cap_evidence(user, 256), "systemd": _SYSTEMD_NOTE}
    entry = manifest.by_path().get(path)
    if entry is None or entry.type != "dir":
        return _not_a_directory(pid, component, entry, manifest=manifest, evidence=evidence)
    evidence["mode"] = f"{entry.mode:04o}"
    evidence["owner"] = cap_evidence(f"{entry.owner}:{entry.group}", 256)
    if runs_as_root(component):
        return pid.passed(f"{path} is a directory ({_describe(entry)}); {component.name} runs as root",
                          evidence)
    if accounts is None or accounts.unavailable_reason is not None:
        return pid.unavailable(accounts.unavailable_reason or "" if accounts else "no accounts were read",
                               evidence)
    who = identity(accounts, user, component.group)
    if isinstance(who, str):
        return pid.unavailable(who, evidence)
    evidence["user"] = cap_evidence(who.describe(), 512)
    if who.uid == 0:
        return pid.passed(f"{path} is a directory; {component.name} runs as uid 0", evidence)
    group = component.group or accounts.group_name(who.gid)
    return _permissions(pid, component, entry, manifest=manifest, who=who, group=group, evidence=evidence)


def _not_a_directory(
    pid: ProbeId, component: Component, entry: FileEntry | None, *, manifest: Manifest,
    evidence: dict[str, str],
) -> ProbeResult:
    """The verdict when the path is missing (``entry`` None) or not a directory."""
    path = pid.subject
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    user = component.user or "root"
    # -g only when the unit names its group: install leaves the group root otherwise, which is fine
    # for a directory the user owns with 0750.
    make = f"install -d -o {user}{f' -g {component.group}' if component.group else ''} -m 0750 {path}"
    missing = IssueKind.PATH_MISSING
    if entry is None:
        if path not in manifest.missing:
            return pid.unavailable(f"the agent's answer does not mention {path}")
        first = next((p for p in checked_paths(path) if p in manifest.missing), path)
        evidence.update(missing=first, remedy=make)
        return pid.failed(severity, f"{path} does not exist ({first} is missing); {component.name} "
                          f"cannot write its data there", evidence, kind=missing)
    evidence.update(mode=f"{entry.mode:04o}", owner=cap_evidence(f"{entry.owner}:{entry.group}", 256),
                    remedy=f"move {path} aside, then {make}")
    if entry.type == "symlink":
        link = cap_evidence(entry.link or "", 1024)
        evidence["link"] = link
        if _is_dynamic_user_layout(entry):
            del evidence["remedy"]
            return pid.passed(f"{path} -> {link}: systemd's DynamicUser= layout, which systemd "
                              f"creates and owns at every start", evidence)
        return pid.failed(severity, f"{path} is a symlink to {link}, not the directory {component.name} "
                          f"writes to", evidence, kind=missing)
    return pid.failed(severity, f"{path} is a {entry.type}, not the directory {component.name} writes "
                      f"to", evidence, kind=missing)


def _permissions(
    pid: ProbeId, component: Component, entry: FileEntry, *, manifest: Manifest, who: Identity,
    group: str, evidence: dict[str, str],
) -> ProbeResult:
    """The verdict on a directory: can ``who`` reach it and create files in it?"""
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    path = entry.path
    entries = manifest.by_path()
    for parent in checked_paths(path)[:-1]:
        above = entries.get(parent)
        # A symlink on the way is followed by the kernel; where it leads is not judged here.
        if above is None or above.type != "dir" or _allows(above, who, _X):
            continue
        cls = _class_bits(above, who)[0]
        evidence["blocked_at"] = cap_evidence(f"{parent}: {_describe(above)}", 512)
        evidence["remedy"] = f"chmod {cls}+x {parent}"
        return pid.failed(severity, f"{who.user} cannot reach {path}: {parent} ({_describe(above)}) is not "
                          f"searchable by it", evidence)
    if _allows(entry, who, _W | _X):
        return pid.passed(f"{path} is writable by {who.user} ({_describe(entry)})", evidence)
    remedy = [] if entry.uid == who.uid else [f"chown {who.user}:{group} {path}"]
    if (entry.mode >> 6) & (_W | _X) != _W | _X:
        remedy.append(f"chmod u+rwx {path}")
    evidence["remedy"] = " && ".join(remedy)
    return pid.failed(severity, f"{path} is not writable by {who.user} ({_describe(entry)}); "
                      f"{component.name} cannot write its data", evidence)


def current_identity(component: Component, batch: ShowBatch | None) -> Component:
    """``component`` with the ``User=``/``Group=`` its unit has *now*, when this run's batched
    ``systemctl show`` answered for it; else as discovered.

    Discovery reads the unit on the target as it was when the watch was resolved, possibly with the
    fault in place (a drop-in naming an account that does not exist): judged against that identity, a
    repaired unit would still fail the probe. The unit's current configuration is what systemd will
    start the service as, so it is what the directory must allow.
    """
    if batch is None or not component.units:
        return component
    show = batch.take(component.units[0])
    if show is None or "User" not in show.properties:
        return component
    return replace(component, user=show.properties["User"], group=show.properties.get("Group", ""))


def probe_writable(
    agent: AgentApi, accounts: RunShared[Accounts], component: Component, path: str,
    batch: ShowBatch | None = None,
) -> ProbeResult:
    """Check ``path`` for ``component`` (as its unit's current user, see :func:`current_identity`).

    Raises:
        TransportError: the target cannot be reached (an agent failure makes the probe unavailable).
    """
    pid = ProbeId(probe_name(path), component.name, IssueKind.PERMISSIONS, path)
    if not is_plain_root(path) or path == "/":
        return pid.unavailable(f"{path!r} is not an absolute, normalised path below /")
    component = current_identity(component, batch)
    try:
        manifest = agent.manifest(checked_paths(path), recursive=False)
    except AgentError as exc:
        return pid.unavailable(f"the agent could not look at {path}: {exc.message}")
    entry = manifest.by_path().get(path)
    # The accounts matter only for a directory someone other than root must write to.
    needed = entry is not None and entry.type == "dir" and not runs_as_root(component)
    return evaluate(component, path, manifest, accounts.get() if needed else None)
