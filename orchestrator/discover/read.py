"""Read what services a target runs, through its transport (so ``local``, ``ssh://`` and ``vm:``
answer alike). Read-only, and a fixed number of commands whatever the number of units:

1. ``systemctl list-units --type=service,socket --all``: the loaded units (an enabled unit is
   always loaded: its target wants it). ``list-unit-files`` would answer for unloaded files too but
   takes 5 s in a TCG guest (FIELD_NOTES), and an unloaded unit runs nothing.
2. ``systemctl show`` of the loaded services and sockets, 256 units per call: unit file state,
   files, directories, user, main PID, what a socket triggers.
3. ``ss -H -ltnp``: the TCP ports each main PID listens on.
4. ``dpkg-query -S`` of the unit files, then ``dpkg-query -W`` of the owners' conffiles.

A question the target cannot answer (no systemd as PID 1, no ss, no dpkg) becomes a note; only an
unreachable target raises.
"""

from __future__ import annotations

import concurrent.futures
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.discover.parse import (
    account,
    parse_conffiles,
    parse_list_units,
    parse_ss_listeners,
    pid,
    rw_paths,
    state_paths,
    unit_words,
)
from orchestrator.facts.parse import directory_path, environment_file_paths, exec_paths, parse_dpkg_search
from orchestrator.facts.read import path_aliases
from orchestrator.systemd import show
from orchestrator.systemd.argv import SYSTEMCTL
from orchestrator.systemd.query import NO_SYSTEMD_MARKERS
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed

TIMEOUT_S = 60.0
SHOW_CHUNK = 256
#: ``systemctl show`` calls in flight at once (each is a guest process and a D-Bus client).
SHOW_WORKERS = 2
MAX_LIST_OUTPUT = 8 * 1024 * 1024
#: ExecStart values and path lists are long; states are short (the show parser caps each value).
MAX_VALUE = 8192
PROPERTIES = (
    "Id", "Names", "LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath",
    "DropInPaths", "EnvironmentFiles", "StateDirectory", "LogsDirectory", "ReadWritePaths",
    "WorkingDirectory", "User", "Group", "MainPID", "ExecStart", "Triggers", "Transient",
)
ENABLED = frozenset({"enabled", "enabled-runtime"})
RUNNING = frozenset({"active", "activating", "reloading", "deactivating"})


@dataclass(frozen=True)
class UnitFacts:
    """What systemd said about one loaded service or socket (validated values only)."""

    unit: str
    names: tuple[str, ...] = ()
    load: str = ""
    active: str = ""
    sub: str = ""
    file_state: str = ""
    fragment: str = ""
    dropins: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    group: str = ""
    main_pid: int = 0
    executables: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    transient: bool = False

    @property
    def is_wanted(self) -> bool:
        """Enabled, or running a process: the units discovery turns into components. A static
        oneshot that ran at boot and exited (``active (exited)``: kmod-static-nodes, remount-fs) is
        part of booting, watched by the system-state probe, not a service."""
        return self.file_state in ENABLED or (self.active in RUNNING and self.sub != "exited")


@dataclass(frozen=True)
class Discovery:
    """Raw discovery of one target; :func:`orchestrator.discover.build.components` makes components."""

    units: tuple[UnitFacts, ...] = ()
    #: TCP ports per unit (by the unit's main PID).
    ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: Owning package per unit file path.
    owners: dict[str, str] = field(default_factory=dict)
    conffiles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Why nothing could be discovered (no systemd as PID 1, no systemctl), or None.
    unavailable: str | None = None
    #: False when systemd was there but some answer failed (a timeout, an error exit): what is
    #: missing from ``units`` may exist, so nothing configured may be called absent.
    complete: bool = True

    def unit(self, name: str) -> UnitFacts | None:
        return next((u for u in self.units if u.unit == name), None)


def discover(transport: Transport, also: Sequence[str] = ()) -> Discovery:
    """Read the target's services (module docstring); ``also`` are units asked about even when they
    are not loaded (configured ones: whether systemd knows them tells whether they exist).

    Raises:
        TransportError: the target cannot be reached.
    """
    notes: list[str] = []
    listing = run_if_installed(transport, [SYSTEMCTL, "list-units", "--type=service,socket", "--all",
                                           "--plain", "--no-legend", "--no-pager"],
                               timeout=TIMEOUT_S, max_output=MAX_LIST_OUTPUT)
    if listing is None:
        return Discovery(unavailable="systemctl is not installed on the target")
    if not listing.succeeded:
        if any(marker in listing.stderr for marker in NO_SYSTEMD_MARKERS):
            return Discovery(unavailable="the target does not run systemd as PID 1")
        return Discovery(unavailable=f"systemctl list-units exited {listing.exit_status}", complete=False)
    listed = parse_list_units(listing.stdout_text)
    if listed.rejected:
        notes.append(f"{listed.rejected} lines of systemctl list-units were not unit lines; ignored")
    loaded = [u.unit for u in listed.units if u.load == "loaded"]
    asked = [*loaded, *sorted(set(also) - set(loaded))]
    units = _show(transport, asked, notes)
    complete = len(units) == len(asked)
    fragments = sorted({u.fragment for u in units if u.fragment.startswith("/") and u.fragment != "/dev/null"
                        and (u.is_wanted or u.unit in also)})
    # The listening sockets and the packages are independent questions: asked side by side (each is a
    # guest process, about half a second under TCG; the transport runs one channel per command).
    port_notes: list[str] = []
    shown = len(notes)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="discover") as pool:
        asked_ports = pool.submit(_ports, transport, units, port_notes)
        owners = _owners(transport, fragments, notes)
        packages = sorted({p.strip().split(":")[0] for owner in owners.values() for p in owner.split(",")})
        conffiles = _conffiles(transport, packages, notes)
        ports = asked_ports.result()
    return Discovery(tuple(units), ports, owners, conffiles, (*notes[:shown], *port_notes, *notes[shown:]),
                     complete=complete)


def _show(transport: Transport, units: Sequence[str], notes: list[str]) -> list[UnitFacts]:
    """Every unit's properties, in ``units``' order. Asked in (at least) two halves side by side: a
    host's first ``systemctl show`` of all its units took 2.3 s under TCG in one call, 1.7 s in two
    (66 units, cold after boot), and it sits before everything else of detection."""
    size = min(SHOW_CHUNK, max(1, -(-len(units) // SHOW_WORKERS)))
    chunks = [units[start:start + size] for start in range(0, len(units), size)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=SHOW_WORKERS,
                                               thread_name_prefix="discover-show") as pool:
        answers = list(pool.map(lambda chunk: show(transport, chunk, PROPERTIES, timeout=TIMEOUT_S,
                                                   max_value=MAX_VALUE), chunks))
    out: list[UnitFacts] = []
    for answer in answers:
        if answer.unavailable_reason is not None:
            notes.append(f"systemctl show: {answer.unavailable_reason}")
            continue
        for info in answer.units:
            if info.id:
                out.append(_facts(info.id, info.properties))
    return out


def _facts(unit: str, props: dict[str, str]) -> UnitFacts:
    def path(key: str) -> str:
        value = props.get(key, "")
        return value if directory_path(value) == value else ""

    writable = (*state_paths(props.get("StateDirectory", ""), "/var/lib"),
                *state_paths(props.get("LogsDirectory", ""), "/var/log"),
                *rw_paths(props.get("ReadWritePaths", "")))
    return UnitFacts(
        unit=unit, names=tuple(unit_words(props.get("Names", ""))),
        load=props.get("LoadState", ""), active=props.get("ActiveState", ""),
        sub=props.get("SubState", ""), file_state=props.get("UnitFileState", ""),
        fragment=path("FragmentPath"),
        dropins=tuple(p for p in props.get("DropInPaths", "").split() if directory_path(p) == p),
        env_files=tuple(environment_file_paths(props.get("EnvironmentFiles", ""))),
        writable=tuple(dict.fromkeys(writable)),
        working_dir=directory_path(props.get("WorkingDirectory", "")) or "",
        user=account(props.get("User", "")), group=account(props.get("Group", "")),
        main_pid=pid(props.get("MainPID", "")),
        executables=tuple(exec_paths(props.get("ExecStart", ""))),
        triggers=tuple(unit_words(props.get("Triggers", ""))),
        transient=props.get("Transient", "") == "yes",
    )


def _ports(transport: Transport, units: Sequence[UnitFacts], notes: list[str]) -> dict[str, tuple[int, ...]]:
    by_pid = {u.main_pid: u.unit for u in units if u.main_pid}
    if not by_pid:
        return {}
    result = run_if_installed(transport, ["ss", "-H", "-ltnp"], timeout=TIMEOUT_S,
                              max_output=MAX_LIST_OUTPUT)
    if result is None or not result.succeeded:
        notes.append("listening ports: ss is not installed or failed; no port is watched")
        return {}
    ports: dict[str, set[int]] = {}
    for listener in parse_ss_listeners(result.stdout_text):
        for owner in {by_pid[p] for p in listener.pids if p in by_pid}:
            ports.setdefault(owner, set()).add(listener.port)
    return {unit: tuple(sorted(found)) for unit, found in ports.items()}


def _owners(transport: Transport, paths: Sequence[str], notes: list[str]) -> dict[str, str]:
    if not paths:
        return {}
    asked = sorted({alias for p in paths for alias in path_aliases(p)})
    result = run_if_installed(transport, ["dpkg-query", "-S", "--", *asked], timeout=TIMEOUT_S,
                              max_output=MAX_LIST_OUTPUT)
    if result is None:
        notes.append("unit file owners: dpkg-query is not installed; no package is watched")
        return {}
    found = parse_dpkg_search(result.stdout_text)   # exit 1 when some path is unowned: normal
    return {p: found[a] for p in paths for a in path_aliases(p) if a in found}


def _conffiles(transport: Transport, packages: Sequence[str], notes: list[str]) -> dict[str, tuple[str, ...]]:
    if not packages:
        return {}
    result = run_if_installed(transport, ["dpkg-query", "-W", "-f", "${binary:Package}\n${Conffiles}\n",
                                          "--", *packages], timeout=TIMEOUT_S, max_output=MAX_LIST_OUTPUT)
    if result is None:
        return {}
    if not result.succeeded:
        notes.append(f"conffiles: dpkg-query exited {result.exit_status}")
    return {name: tuple(paths) for name, paths in parse_conffiles(result.stdout_text).items()}


def under(path: str, roots: Sequence[str]) -> bool:
    path = posixpath.normpath(path)
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
