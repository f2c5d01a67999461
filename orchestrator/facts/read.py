"""Read a target's facts through its transport, so ``local``, ``ssh://`` and ``vm:`` answer alike.

Read-only: each question is one command or one agent read (about ten in all, independent of the
number of packages). A question the target cannot answer (no dpkg, no systemd, an unreadable sources
file) becomes a note in the facts, not an error: a host vmrepair did not build may lack any of them.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Sequence
from typing import TypeVar

from orchestrator.agent.api import AgentApi
from orchestrator.errors import TransportError
from orchestrator.facts.model import AptSource, OsRelease, TargetFacts, UnitFile, Unpackaged
from orchestrator.facts.parse import (
    ARCH,
    Parsed,
    directory_path,
    environment_file_paths,
    exec_paths,
    parse_deb822_sources,
    parse_dpkg_search,
    parse_os_release,
    parse_packages,
    parse_sources_list,
    unit_states_from_tree,
)
from orchestrator.model import Component
from orchestrator.systemd import show
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Unpackaged paths of the affected units, and notes on what could not be told.
Unpackaged_ = tuple[tuple[Unpackaged, ...], tuple[str, ...]]

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
#: Where systemctl mask/enable leave their symlinks (persistent and runtime).
UNIT_LINK_DIRS = ("/etc/systemd/system", "/run/systemd/system")
SOURCES_LIST = "/etc/apt/sources.list"
SOURCES_DIR = "/etc/apt/sources.list.d"
PACKAGE_FORMAT = "${binary:Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\t${Status}\n"
#: Where application code that no package installs usually lives; reported even when dpkg owns
#: something there (a package may own the directory but not what was deployed into it).
APP_ROOTS = ("/opt/", "/usr/local/", "/srv/", "/home/")
EXEC_PROPERTIES = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop")
DIR_PROPERTIES = ("WorkingDirectory", "RootDirectory")
MAX_SMALL_FILE = 256 * 1024
MAX_SOURCE_FILES = 64
MAX_LIST_OUTPUT = 32 * 1024 * 1024
TIMEOUT_S = 60.0


def read_unpackaged(transport: Transport, components: Sequence[Component]) -> Unpackaged_:
    """What the components' units execute, work in or load that no package owns (and what could not be
    told, as notes).

    Raises:
        TransportError: the target cannot be reached.
    """
    notes: list[str] = []
    units = sorted({u for c in components for u in c.units})
    return (tuple(_unpackaged(transport, units, notes)) if units else ()), tuple(notes)


def application_roots(unpackaged: Sequence[Unpackaged], covered: Sequence[str]) -> list[str]:
    """Paths to capture so the component's own code travels to the VM: an application directory
    under /opt or /srv (``/opt/app`` for ``/opt/app/venv/bin/python``), other unpackaged files and
    directories as they are. Home directories are left out (people's files are not the service's);
    paths inside ``covered`` (already captured) too."""
    roots: list[str] = []
    for item in unpackaged:
        path = item.path
        if path.startswith("/home/"):
            continue
        parts = path.split("/")
        if path.startswith(("/opt/", "/srv/")) and len(parts) > 3:
            path = "/".join(parts[:3])
        if not any(path == c or path.startswith(c + "/") for c in (*covered, *roots)):
            roots = [r for r in roots if not r.startswith(path + "/")] + [path]
    return roots


def read_facts(transport: Transport, agent: AgentApi, components: Sequence[Component], *,
               unpackaged: Unpackaged_ | None = None) -> TargetFacts:
    """The target's facts; ``components`` are the affected ones (their units' unpackaged files, or
    ``unpackaged`` when the caller read them already).

    Raises:
        TransportError: the target cannot be reached at all (a question it cannot answer is a note).
    """
    used, notes_of_units = unpackaged if unpackaged is not None else read_unpackaged(transport, components)
    notes: list[str] = list(notes_of_units)
    os_release = _os_release(agent, notes)
    arch = _arch(transport, notes)
    packages = _note(parse_packages(_run(transport, ["dpkg-query", "-W", "-f", PACKAGE_FORMAT], notes,
                                         "the package database")), "package lines", notes)
    unit_files = _unit_files(agent, notes)
    sources = _sources(agent, notes)
    return TargetFacts(os_release, arch, tuple(sources), tuple(packages), tuple(unit_files), used,
                       tuple(notes))


def _note(parsed: Parsed[T], what: str, notes: list[str]) -> list[T]:
    if parsed.rejected:
        notes.append(f"{parsed.rejected} {what} refused (not in the syntax Debian allows)")
    if parsed.truncated:
        notes.append(f"more {what} than the {len(parsed.items)} kept")
    return parsed.items


def _run(transport: Transport, argv: list[str], notes: list[str], what: str) -> str:
    result = run_if_installed(transport, argv, timeout=TIMEOUT_S, max_output=MAX_LIST_OUTPUT)
    if result is None:
        notes.append(f"{what}: {argv[0]} is not installed")
        return ""
    if not result.succeeded:
        notes.append(f"{what}: {argv[0]} exited {result.exit_status}")
        return ""
    if result.is_truncated:
        notes.append(f"{what}: the answer was longer than {MAX_LIST_OUTPUT} bytes and was cut")
    return result.stdout_text


def _read(agent: AgentApi, path: str) -> str | None:
    try:
        return agent.read_file(path, max_bytes=MAX_SMALL_FILE).decode("utf-8", errors="replace")
    except TransportError:
        return None


def _os_release(agent: AgentApi, notes: list[str]) -> OsRelease:
    for path in OS_RELEASE:
        text = _read(agent, path)
        if text is not None:
            parsed = parse_os_release(text)
            if parsed is not None:
                return parsed
            notes.append(f"{path} has no valid ID=")
    notes.append("the OS is unknown: no readable os-release")
    return OsRelease("unknown")


def _arch(transport: Transport, notes: list[str]) -> str:
    arch = _run(transport, ["dpkg", "--print-architecture"], notes, "the architecture").strip()
    if ARCH.match(arch):
        return arch
    uname = _run(transport, ["uname", "-m"], notes, "the architecture").strip()
    # uname names the kernel's machine, dpkg the userland's: map the usual two, keep others as said.
    mapped = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname, uname)
    return mapped if ARCH.match(mapped) else "unknown"


def _sources(agent: AgentApi, notes: list[str]) -> list[AptSource]:
    sources: list[AptSource] = []
    main = _read(agent, SOURCES_LIST)
    if main is not None:
        sources += _note(parse_sources_list(main, SOURCES_LIST), f"lines of {SOURCES_LIST}", notes)
    try:
        listing = agent.manifest([SOURCES_DIR])
    except TransportError as exc:
        notes.append(f"{SOURCES_DIR}: {exc.message}")
        return sources
    names = sorted(e.path for e in listing.entries
                   if e.type == "file" and posixpath.dirname(e.path) == SOURCES_DIR
                   and e.path.endswith((".list", ".sources")))
    if len(names) > MAX_SOURCE_FILES:
        notes.append(f"{len(names)} files in {SOURCES_DIR}; the first {MAX_SOURCE_FILES} were read")
    for path in names[:MAX_SOURCE_FILES]:
        text = _read(agent, path)
        if text is None:
            notes.append(f"{path} could not be read")
            continue
        parse = parse_deb822_sources if path.endswith(".sources") else parse_sources_list
        sources += _note(parse(text, path), f"entries of {path}", notes)
    return sources


def _unit_files(agent: AgentApi, notes: list[str]) -> list[UnitFile]:
    try:
        tree = agent.manifest(list(UNIT_LINK_DIRS))
    except TransportError as exc:
        notes.append(f"unit-file states: {exc.message}")
        return []
    entries = ((e.path, e.type, e.link) for e in tree.entries)
    return _note(unit_states_from_tree(entries, UNIT_LINK_DIRS), "unit links", notes)


def _unpackaged(transport: Transport, units: list[str], notes: list[str]) -> list[Unpackaged]:
    answer = show(transport, units, ("Id", *EXEC_PROPERTIES, *DIR_PROPERTIES, "EnvironmentFiles"))
    if answer.unavailable_reason:
        notes.append(f"unit commands: {answer.unavailable_reason}")
        return []
    used: list[Unpackaged] = []
    for unit, info in zip(units, answer.units, strict=False):
        props = info.properties
        for prop in EXEC_PROPERTIES:
            used += [Unpackaged(unit, p, prop) for p in exec_paths(props.get(prop, ""))]
        for prop in DIR_PROPERTIES:
            path = directory_path(props.get(prop, ""))
            if path is not None:
                used.append(Unpackaged(unit, path, prop))
        used += [Unpackaged(unit, p, "EnvironmentFiles") for p in environment_file_paths(
            props.get("EnvironmentFiles", ""))]
    if not used:
        return []
    owned = _owned(transport, {u.path for u in used}, notes)
    return [u for u in dict.fromkeys(used)
            if u.path.startswith(APP_ROOTS) or not _is_owned(u.path, owned)]


def _owned(transport: Transport, paths: Iterable[str], notes: list[str]) -> dict[str, str]:
    # Debian 12 merged /usr: dpkg may know /bin/sh as /bin/sh and not as /usr/bin/sh (or the reverse),
    # so both spellings are asked.
    asked = sorted({alias for p in paths for alias in path_aliases(p)})
    # `--` keeps a path that a hostile unit named "-x" from being read as an option.
    result = run_if_installed(transport, ["dpkg-query", "-S", "--", *asked], timeout=TIMEOUT_S)
    if result is None:
        notes.append("file ownership: dpkg-query is not installed; every path counts as unpackaged")
        return {}
    return parse_dpkg_search(result.stdout_text)   # exit 1 when some path is unowned: normal


def path_aliases(path: str) -> tuple[str, ...]:
    for merged in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if path.startswith("/usr" + merged):
            return path, path[len("/usr"):]
        if path.startswith(merged):
            return path, "/usr" + path
    return (path,)


def _is_owned(path: str, owned: dict[str, str]) -> bool:
    return any(alias in owned for alias in path_aliases(path))
