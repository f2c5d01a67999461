"""The watch of one target: discovered services, configured overrides and the baseline, merged once.

Rules, in order:

1. ``ignore:`` names (component or unit) are dropped wherever they came from, and so are the paths
   ``ignore_paths:`` covers, from every component once merged (:mod:`orchestrator.components.ignore`).
2. A configured component and a discovered one are the same component when they share a name or a
   unit. The configured one keeps its name and leads (it owns the probes two components share);
   lists are the union (configured entries first), ``config_test`` is the configured one when given,
   ``vital`` the configured one unless it was left unset.
3. A configured component with units of which systemd knows none, and which the baseline does not
   record, does not exist on this target: it is left out and reported once as information (a host
   without nginx gets no ``http_down`` for nginx). Components without units (``boot``) always exist.
4. A component the last baseline recorded but that is no longer discovered (its unit file deleted,
   the unit masked) stays watched, so its probes report what went missing.
5. Without systemd on the target (or ``discover: false``) only rules 1, 3 and 4 apply.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.agent.api import AgentApi
from orchestrator.baseline import layout
from orchestrator.components.config import WatchConfig
from orchestrator.components.ignore import strip_paths
from orchestrator.components.record import from_json
from orchestrator.config.settings import Settings
from orchestrator.discover import cache
from orchestrator.discover.build import components as discovered_components
from orchestrator.discover.read import RUNNING, Discovery, UnitFacts, discover
from orchestrator.errors import StateError, VmRepairError
from orchestrator.model import Component
from orchestrator.state.db import StateDb
from orchestrator.systemd import show
from orchestrator.systemd.query import ShowAnswer
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """The resolved watch of a target, and how it was reached (for ``watch list`` and reports)."""

    watch: WatchConfig
    #: Configured components that do not exist on the target (rule 3).
    absent: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    from_cache: bool = False


def merge(configured: WatchConfig, discovered: Sequence[Component], *, present: Iterable[str],
          baseline: Sequence[Component] = ()) -> tuple[WatchConfig, tuple[str, ...]]:
    """Rules 1-4 of the module docstring; returns the resolved watch and the absent names."""
    ignored = set(configured.ignore)

    def kept(comp: Component) -> bool:
        return comp.name not in ignored and not ignored.intersection(comp.units)

    known = set(present) | {u for c in discovered for u in c.units}
    recorded = {c.name for c in baseline}
    remaining = [c for c in discovered if kept(c)]
    out: list[Component] = []
    absent: list[str] = []
    for own in filter(kept, configured.components):
        matches = [d for d in remaining if d.name == own.name or set(d.units) & set(own.units)]
        remaining = [d for d in remaining if d not in matches]
        if not matches and own.units and not known.intersection(own.units) and own.name not in recorded:
            absent.append(own.name)
            continue
        merged = own
        for found in matches:
            merged = _overlay(merged, found, vital_unset=own.name in configured.vital_unset)
        out.append(merged)
    out += remaining
    recorded_as = {c.name: c for c in baseline}
    out = [_with_baseline(c, recorded_as.get(c.name), configured.vital_unset) for c in out]
    names = {c.name for c in out}
    units = {u for c in out for u in c.units}
    out += [replace(c, origin="baseline") for c in baseline
            if kept(c) and c.name not in names and not units.intersection(c.units)]
    out = [strip_paths(c, configured.ignore_paths) for c in out]
    return replace(configured, components=tuple(out), resolved=True), tuple(absent)


def _with_baseline(comp: Component, recorded: Component | None, vital_unset: frozenset[str]) -> Component:
    """A service discovered while it was down listens on nothing and looks optional: the healthy
    baseline's ports and vitality still hold (an explicitly configured ``vital`` wins)."""
    if recorded is None or not recorded.ports:
        return comp
    explicit = "configured" in comp.origin and comp.name not in vital_unset
    return replace(comp, ports=tuple(sorted({*comp.ports, *recorded.ports})),
                   vital=comp.vital if explicit else comp.vital or recorded.vital)


def _overlay(comp: Component, found: Component, *, vital_unset: bool) -> Component:
    def union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*a, *b)))

    return replace(
        comp,
        vital=found.vital if vital_unset else comp.vital,
        units=union(comp.units, found.units),
        config_paths=union(comp.config_paths, found.config_paths),
        unit_paths=union(comp.unit_paths, found.unit_paths),
        config_test=comp.config_test or found.config_test,
        http=tuple(dict.fromkeys((*comp.http, *found.http))),
        packages=union(comp.packages, found.packages),
        log_paths=union(comp.log_paths, found.log_paths),
        origin="configured,discovered",
        user=comp.user or found.user, group=comp.group or found.group,
        writable_paths=union(comp.writable_paths, found.writable_paths),
        ports=tuple(sorted({*comp.ports, *found.ports})),
        sockets=union(comp.sockets, found.sockets),
    )


@dataclass(frozen=True)
class BaselineFacts:
    """What the newest baseline of a target says, as resolution passes it on to the probes."""

    components: tuple[Component, ...] = ()
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    modes: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)


def baseline_facts(baselines_dir: Path, target: str) -> BaselineFacts:
    """Components, unit states and path modes of the newest baseline of ``target`` (nothing when
    there is none). Read from its JSON files only (the tar is not verified here: nothing is restored
    from it); an unreadable file is logged and ignored, the baseline being a hint to detection."""
    try:
        latest = layout.read_latest(layout.target_dir(baselines_dir, target))
    except VmRepairError as exc:
        log.warning("baseline of %s ignored: %s", target, exc)
        return BaselineFacts()
    if latest is None:
        return BaselineFacts()
    return BaselineFacts(tuple(baseline_components(baselines_dir, target)),
                         _recorded_units(latest.path / layout.UNITS_JSON),
                         _recorded_modes(latest.path / layout.MANIFEST_JSON))


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("%s ignored: %s", path, exc)
        return None


def _recorded_units(path: Path) -> dict[str, tuple[str, str]]:
    data = _load(path)
    units = data.get("units") if isinstance(data, dict) else None
    if not isinstance(units, dict):
        return {}
    return {str(unit): (str(state.get("ActiveState")), str(state.get("UnitFileState")))
            for unit, state in units.items()
            if isinstance(state, dict) and isinstance(state.get("ActiveState"), str)
            and isinstance(state.get("UnitFileState"), str)}


def _recorded_modes(path: Path) -> dict[str, tuple[str, int, int, int]]:
    data = _load(path)
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return {}
    out: dict[str, tuple[str, int, int, int]] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and all(
                isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                for k in ("mode", "uid", "gid")):
            out[entry["path"]] = (str(entry.get("type")), entry["mode"], entry["uid"], entry["gid"])
    return out


def baseline_components(baselines_dir: Path, target: str) -> list[Component]:
    """The components the newest baseline of ``target`` recorded (none for older baselines that did
    not record them, or when there is no baseline). An unreadable record is logged and ignored: the
    baseline is a hint here, not the source."""
    try:
        latest = layout.read_latest(layout.target_dir(baselines_dir, target))
        if latest is None:
            return []
        path = latest.path / layout.COMPONENTS_JSON
        if not path.is_file():
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
        return from_json(data.get("components") if isinstance(data, dict) else None, source=str(path))
    except (VmRepairError, OSError, ValueError) as exc:
        log.warning("baseline components of %s ignored: %s", target, exc)
        return []


def resolve_for(settings: Settings, db: StateDb | None, target: str, transport: Transport,
                agent: AgentApi) -> Resolution:
    """:func:`resolve_watch` with the settings' watch, cache and baselines.

    Raises:
        TransportError: the target cannot be reached.
    """
    return resolve_watch(settings.watch, target, transport, agent, db=db,
                         baselines_dir=settings.baselines_dir)


def resolve_watch(
    configured: WatchConfig, target: str, transport: Transport, agent: AgentApi, *,
    db: StateDb | None, baselines_dir: Path,
) -> Resolution:
    """The watch of ``target`` (module docstring). Discovery is read from the cache in ``db`` when
    the target's unit files, packages and configured units are unchanged, else read and cached.

    Raises:
        TransportError: the target cannot be reached.
    """
    if configured.resolved:
        return Resolution(configured)
    facts = baseline_facts(baselines_dir, target)
    baseline = list(facts.components)
    configured = replace(configured, baseline_units=facts.units, baseline_modes=facts.modes)
    asked = sorted({u for c in configured.components for u in c.units})
    if not configured.discover:
        # Only whether the configured units exist: one systemctl show, no listing, ss or dpkg.
        answer = show(transport, asked, ("Id", "LoadState")) if asked else ShowAnswer()
        known = Discovery(tuple(UnitFacts(unit, load=info.load_state)
                                for unit, info in zip(asked, answer.units, strict=False)),
                          complete=answer.unavailable_reason is None and len(answer.units) == len(asked))
        if answer.unavailable_reason and "PID 1" in answer.unavailable_reason:
            known = Discovery(unavailable=answer.unavailable_reason)
        watch, absent = merge(configured, (), present=_present(known, asked), baseline=baseline)
        return Resolution(watch, absent, (answer.unavailable_reason,) if answer.unavailable_reason else ())
    entry, from_cache = _discovered(transport, agent, target, asked, db)
    watch, absent = merge(configured, entry.components, present=entry.present, baseline=baseline)
    return Resolution(watch, absent, entry.notes, from_cache)


def _discovered(transport: Transport, agent: AgentApi, target: str, asked: Sequence[str],
                db: StateDb | None) -> tuple[cache.Cached, bool]:
    fp = ""
    previous = None
    if db is not None:
        try:
            previous = cache.load(db, target)
        except StateError as exc:
            log.info("discovery cache of %s not used: %s", target, exc)
    if db is not None and previous is not None:
        fp = _fingerprint(agent, target, asked)
        if fp and previous.is_fresh(fp):
            return previous, True
        found = discover(transport, also=asked)
    elif db is not None:
        # Nothing cached: the fingerprint (one agent call) is only needed to store this discovery, so it
        # is taken while discovery runs instead of before it (a new target's first run waits for both).
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint") as pool:
            taken = pool.submit(_fingerprint, agent, target, asked)
            found = discover(transport, also=asked)
            fp = taken.result()
    else:
        found = discover(transport, also=asked)
    notes = (*found.notes, *([f"discovery: {found.unavailable}"] if found.unavailable else ()))
    comps = tuple(_keep_ports(discovered_components(found, include=asked), previous, found))
    present = _present(found, asked)
    entry = cache.Cached(fp, comps, tuple(notes), present, time.time())
    if db is not None and fp and found.unavailable is None and found.complete:
        try:
            cache.store(db, target, entry)
        except StateError as exc:
            log.warning("discovery of %s not cached: %s", target, exc.message)
    return entry, False


def _fingerprint(agent: AgentApi, target: str, asked: Sequence[str]) -> str:
    """The discovery fingerprint, or "" (nothing is reused or stored) when it cannot be taken."""
    try:
        return cache.fingerprint(agent, asked)
    except VmRepairError as exc:
        log.info("discovery cache of %s not used: %s", target, exc)
        return ""


def _present(found: Discovery, asked: Sequence[str]) -> frozenset[str]:
    """Configured units that exist; all of them when discovery could not tell (a timeout must not
    make a watched service disappear and the host look healthy)."""
    if not found.complete:
        return frozenset(asked)
    return frozenset(u.unit for u in found.units if u.load not in ("", "not-found"))


def _keep_ports(comps: list[Component], previous: cache.Cached | None, found: Discovery) -> list[Component]:
    """A service that is down now listens on nothing: keep the ports it was discovered with, so the
    port probe reports them missing instead of forgetting them."""
    if previous is None:
        return comps
    before = {c.name: c.ports for c in previous.components}
    vital = {c.name: c.vital for c in previous.components}
    out = []
    for comp in comps:
        unit = found.unit(comp.units[0]) if comp.units else None
        down = unit is None or unit.active not in RUNNING
        out.append(replace(comp, ports=before[comp.name], vital=comp.vital or vital[comp.name])
                   if not comp.ports and before.get(comp.name) and down else comp)
    return out


def watch_summary(resolution: Resolution) -> dict[str, object]:
    """What ``watch list --json`` prints and a session's ``detect.json`` keeps."""
    return {
        "components": [{"name": c.name, "origin": c.origin, "vital": c.vital, "units": list(c.units),
                        "sockets": list(c.sockets), "packages": list(c.packages),
                        "ports": list(c.ports), "user": c.user}
                       for c in resolution.watch.components],
        "ignore": list(resolution.watch.ignore), "ignore_paths": list(resolution.watch.ignore_paths),
        "absent": list(resolution.absent), "notes": list(resolution.notes),
        "from_cache": resolution.from_cache,
    }
