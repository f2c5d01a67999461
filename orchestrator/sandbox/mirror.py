"""Make the troubleshooting VM hold exactly the target's tree inside the captured roots, after the unpack
wrote what the target has: remove what the target lacks, give files the target's owners *by name*, and
give the affected units the target's enablement. Each returns what it did, for the evidence.

Everything here comes from the capture, which came from the target: names are checked against the
syntax useradd accepts before they reach a command, and paths are only ever taken from inside the
captured roots.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator import systemd
from orchestrator.agent.api import AgentApi, Manifest
from orchestrator.capture.snapshot import Capture
from orchestrator.detect.sysdirs import RULES as SYSTEM_PATHS
from orchestrator.errors import AgentError
from orchestrator.session.store import Session
from orchestrator.transport.base import Transport

#: The agent's manifest stops at this many entries; beyond it an absence in the capture proves nothing.
MANIFEST_LIMIT = 50_000
#: Target UnitFileState -> (systemctl verb, the state it leaves in the VM). ``static``, ``alias``,
#: ``generated`` ... are properties of the unit file itself, which the capture carries.
MIRRORED_STATES = {"masked": ("mask", "masked"), "disabled": ("disable", "disabled"),
                   "enabled": ("enable", "enabled")}
#: What Debian's useradd/groupadd accept (NAME_REGEX of adduser.conf, system accounts).
ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
#: chown arguments per command (argv stays far below ARG_MAX).
CHOWN_BATCH = 200
TIMEOUT_S = 60.0


def remove_absent(transport: Transport, agent: AgentApi, capture: Capture, in_vm: Manifest,
                  session: Session) -> list[str]:
    """Inside the captured roots, remove what the VM has (``in_vm``, its manifest of the roots) and the
    target does not (a deleted file, a missing directory, a whole root absent there): the VM must lack
    what the target lacks, or a fault made of an absence passes in the VM. Only paths strictly inside
    the roots (or a root the target lacks entirely) are touched. Returns the removed paths.

    Raises:
        TransportError: the VM stopped answering.
    """
    if len(capture.manifest.entries) >= MANIFEST_LIMIT:
        session.event("sandbox", "absences_not_mirrored",
                      reason=f"the capture lists {MANIFEST_LIMIT}+ entries and may be cut short")
        return []
    on_target = {e.path for e in capture.manifest.entries} | capture.placeholder_paths
    missing_roots = set(capture.manifest.missing)
    # Shallowest first: a directory goes with everything in it, in one command.
    extra = sorted((e for e in in_vm.entries if e.path not in on_target
                    and _removable(e.path, capture.paths, missing_roots)),
                   key=lambda e: (e.path.count("/"), e.path))
    removed: list[str] = []
    for entry in extra:
        if any(entry.path.startswith(gone + "/") for gone in removed):
            continue  # inside a directory already removed
        if entry.type == "dir":
            transport.check(["rm", "-rf", "--", entry.path], timeout=TIMEOUT_S)
        else:
            agent.remove_file(entry.path)
        removed.append(entry.path)
    if removed:
        session.event("sandbox", "absences_mirrored", removed=removed[:200], count=len(removed))
    return removed


def _removable(path: str, roots: tuple[str, ...], missing_roots: set[str]) -> bool:
    return any(path.startswith(root + "/") or (path == root and root in missing_roots) for root in roots)


def map_owners(transport: Transport, capture: Capture, in_vm: Manifest, session: Session) -> list[str]:
    """Give every captured path the target's owner and group *by name*. The unpack keeps the archive's
    numeric ids: right when the VM's accounts match the target's (hosts built from the same template),
    wrong otherwise (an application account created on the target by hand has another id, or none, in
    the VM). Only paths whose names differ are touched, so a VM that matches costs no command. Accounts
    the VM lacks are created as system accounts without a home or a login shell. Returns what was done
    (``useradd myapp``, ``chown myapp:myapp (12 paths)``).

    Raises:
        TransportError: the VM stopped answering, or an account could not be created.
    """
    have = in_vm.by_path()
    differ: dict[str, tuple[str, str]] = {}
    for entry in capture.manifest.entries:
        there = have.get(entry.path)
        if there is not None and (there.owner, there.group) != (entry.owner, entry.group):
            differ[entry.path] = (entry.owner, entry.group)
    if not differ:
        return []
    done: list[str] = []
    names = {n for pair in differ.values() for n in pair if not n.isdigit()}
    refused = sorted(n for n in names if not ACCOUNT_NAME.match(n))
    if refused:
        done.append(f"refused {len(refused)} account name(s) outside useradd's syntax")
    for group in sorted({g for _, g in differ.values() if ACCOUNT_NAME.match(g)}):
        if not _exists(transport, "group", group):
            transport.check(["groupadd", "--system", "--", group], timeout=TIMEOUT_S)
            done.append(f"groupadd {group}")
    for user, group in sorted({(o, g) for o, g in differ.values() if ACCOUNT_NAME.match(o)}):
        if not _exists(transport, "passwd", user):
            primary = ["-g", group] if ACCOUNT_NAME.match(group) else []
            transport.check(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                             *primary, "--", user], timeout=TIMEOUT_S)
            done.append(f"useradd {user}")
    by_owner: dict[str, list[str]] = defaultdict(list)
    for path, (owner, group) in differ.items():
        if all(n.isdigit() or ACCOUNT_NAME.match(n) for n in (owner, group)):
            by_owner[f"{owner}:{group}"].append(path)
    for spec, paths in sorted(by_owner.items()):
        for batch in _batches(sorted(paths)):
            # -h: a symlink's own owner, never what it points at.
            transport.check(["chown", "-h", "--", spec, *batch], timeout=TIMEOUT_S)
        done.append(f"chown {spec} ({len(paths)} paths)")
    session.event("sandbox", "owners_mapped", changed=done)
    return done


def _exists(transport: Transport, database: str, name: str) -> bool:
    return transport.run(["getent", "--", database, name], timeout=TIMEOUT_S).succeeded


def _batches(paths: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(paths), CHOWN_BATCH):
        yield paths[start:start + CHOWN_BATCH]


def unit_states(transport: Transport, capture: Capture, units: list[str], session: Session) -> list[str]:
    """Give each unit the target's enablement: a unit masked (or disabled, or enabled) there is so here
    before the restart, so a fault made of a unit state reproduces. Returns what was done.

    Raises:
        CommandTimeoutError: systemctl hung in the VM (the VM cannot be trusted).
        TransportError: the VM stopped answering.
    """
    done: list[str] = []
    wanted = {u: MIRRORED_STATES[state] for u in units
              if (state := capture.units.get(u, {}).get("UnitFileState", "")) in MIRRORED_STATES}
    if not wanted:
        return done
    # One question for all of them (each systemctl call costs about 0.2 s under TCG).
    current = systemd.show(transport, list(wanted), ("UnitFileState",))
    have = {u: info.unit_file_state for u, info in zip(wanted, current.units, strict=False)}
    for unit, (verb, state) in wanted.items():
        if have.get(unit) == state:
            continue
        outcome = systemd.unit_command(transport, verb, unit)
        outcome.raise_for_timeout(transport.host)
        done.append(f"{verb} {unit}: {'done' if outcome.succeeded else outcome.describe()}")
    if done:
        session.event("sandbox", "unit_states", changed=done)
    return done



@dataclass(frozen=True)
class MetaMirror:
    """What :func:`meta_nodes` did, and what it could not do."""

    #: Each change made (``/tmp: root:root 1777``, ``removed /var/lib/app``) or deliberately not made.
    done: tuple[str, ...] = ()
    #: Meta paths the target has as a regular file and the VM lacks: never created (a file's content
    #: is never copied), so a fault in their mode cannot show in the VM.
    lacking: tuple[str, ...] = ()


def meta_nodes(transport: Transport, agent: AgentApi, capture: Capture, session: Session) -> MetaMirror:
    """Give the capture's meta paths (captured by their own entry only: :attr:`Capture.meta_paths`,
    the directories a service writes to, and the system paths whose mode a repair fixes) the target's
    state in the VM: the target's mode, owner and group on the VM's *own* directory or file there, and
    a missing directory created or a directory the target lacks removed. Their content is never
    copied (a database's state directory; ``/etc/shadow``, which holds every password hash): only what
    a start or a probe checks (that it exists, who may read or write it) is mirrored, so a fault made
    of a missing or mis-owned path reproduces.

    Never done, because the VM's own file there is not the target's: a file is never written (one the
    VM lacks stays missing, listed in :attr:`MetaMirror.lacking`, and its fault will not reproduce);
    a node of another type is never replaced; and a system path (:data:`~orchestrator.detect.sysdirs.
    RULES`: ``/etc/sudoers``, ``/etc/shadow``, ``/etc`` ...) the target lacks is never removed from
    the VM, whose logins and ``sudo`` (how the orchestrator may reach root there) depend on them:
    such an absence is no mode fault a meta repair could fix anyway.

    Raises:
        TransportError: the VM stopped answering.
    """
    if not capture.meta_paths:
        return MetaMirror()
    on_target = capture.manifest.by_path()
    in_vm = agent.manifest(list(capture.meta_paths), recursive=False).by_path()
    done: list[str] = []
    lacking: list[str] = []
    for path in capture.meta_paths:
        want, have = on_target.get(path), in_vm.get(path)
        if want is None:
            if path in capture.manifest.missing and have is not None:
                if path in SYSTEM_PATHS:
                    done.append(f"kept {path}: the target lacks it, but the VM's own system {have.type} "
                                "is never removed")
                    continue
                transport.check(["rm", "-rf", "--", path], timeout=TIMEOUT_S)
                done.append(f"removed {path}")
            continue
        names = (want.owner, want.group)
        if want.type not in ("dir", "file") or not all(ACCOUNT_NAME.match(n) or n.isdigit() for n in names):
            continue
        if have is None and want.type == "file":
            lacking.append(path)
            done.append(f"{path}: the VM has no such file; not created (a file's content is never copied)")
            continue
        if have is None:
            transport.check(["mkdir", "-p", "--", path], timeout=TIMEOUT_S)
        elif (have.type, have.mode, have.owner, have.group) == (want.type, want.mode, want.owner, want.group):
            continue
        elif have.type != want.type:
            continue   # the VM has something else there: not ours to replace
        # An owner the VM has no account for stays the VM's: reported, not fatal (the fault may still
        # reproduce through the mode, and the evidence says what differs). chown -h and a regular file
        # or directory (lstat above): nothing here follows a symlink.
        owned = transport.run(["chown", "-h", "--", f"{want.owner}:{want.group}", path], timeout=TIMEOUT_S)
        transport.check(["chmod", "--", f"{want.mode:o}", path], timeout=TIMEOUT_S)
        note = "" if owned.succeeded else f" (chown failed: {owned.stderr_text.strip()[:120]})"
        done.append(f"{path}: {want.owner}:{want.group} {want.mode:o}{note}")
    if done:
        session.event("sandbox", "meta_paths_mirrored", changed=done, vm_lacks=lacking)
    return MetaMirror(tuple(done), tuple(lacking))


def packaged_absences(agent: AgentApi, capture: Capture, session: Session) -> list[str]:
    """Remove from the VM the packaged files the target lacks (:attr:`Capture.package_missing`, what
    ``dpkg --verify`` reported there): a deleted binary outside the captured roots must be deleted
    here too, or the fault passes in the VM. Only regular files and symlinks go (the agent refuses
    anything else, and never follows a link); each removal is recorded. Returns the removed paths.

    Raises:
        TransportError: the VM stopped answering.
    """
    removed: list[str] = []
    refused: list[str] = []
    for path in capture.package_missing:
        try:
            agent.remove_file(path)
        except AgentError as exc:
            refused.append(f"{path}: {exc.message}")
            continue
        removed.append(path)
    if removed or refused:
        session.event("sandbox", "package_absences_mirrored", removed=removed[:200], refused=refused[:50])
    return removed
