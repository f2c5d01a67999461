"""The Detector: plans every probe the watch config asks for, runs them, and re-runs one by name."""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

from orchestrator.agent.api import AgentApi, AgentRead, Prefetching
from orchestrator.components.config import WatchConfig
from orchestrator.components.ignore import covering
from orchestrator.detect import (
    config_test,
    disk,
    fstab,
    http,
    jsonl,
    kernel,
    memory,
    modes,
    packages,
    pkgmeta,
    ports,
    symlinks,
    sysdirs,
    system,
    unit_loops,
    units,
    writable,
)
from orchestrator.detect.answer_store import AnswerStore
from orchestrator.detect.common import HOST_COMPONENT
from orchestrator.detect.report import DetectionReport
from orchestrator.detect.shared import RunShared
from orchestrator.detect.verify_cache import Fingerprinting, VerifyCache
from orchestrator.errors import ConfigError, VmRepairError
from orchestrator.model import Component, ProbeResult
from orchestrator.transport.base import CommandResult, Transport

__all__ = ["DetectionReport", "Detector"]  # DetectionReport: callers import both from here

log = logging.getLogger(__name__)

Probe = Callable[[], ProbeResult]
T = TypeVar("T")
#: Probes run side by side: each is a short command whose cost is mostly the round trip and the
#: guest's process start (about 80 ms under TCG, FIELD_NOTES), so a few at once overlap those waits.
#: The transports are thread-safe (paramiko opens one channel per command on one connection).
PARALLEL_PROBES = 4


def run_probes(probes: Iterable[Callable[[], T]], *, workers: int = PARALLEL_PROBES,
               slow: Collection[int] = (), on_done: Callable[[T], None] | None = None) -> list[T]:
    """Run ``probes`` concurrently; results in the order given. The first error is raised (after the
    others finished), as a sequential run would have raised it. The probes at the indexes ``slow`` start
    first: a round ends with its last probe, and one that hashes a package's files for seconds, started
    last, would run alone after all the short ones. ``on_done`` sees each result as soon as it is there
    (in the probe's thread), before the round ends."""
    planned = list(probes)
    if on_done is not None:
        planned = [_reporting(probe, on_done) for probe in planned]
    if len(planned) <= 1 or workers <= 1:
        return [probe() for probe in planned]
    order = sorted(range(len(planned)), key=lambda i: i not in slow)   # stable: the given order otherwise
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(planned)),
                                               thread_name_prefix="probe") as pool:
        # Each probe in a copy of the caller's context: it sees the batch's prefetched answers.
        futures = {i: pool.submit(contextvars.copy_context().run, planned[i]) for i in order}
        return [futures[i].result() for i in range(len(planned))]


def _reporting(probe: Callable[[], T], on_done: Callable[[T], None]) -> Callable[[], T]:
    def run() -> T:
        result = probe()
        on_done(result)
        return result
    return run


#: Probes whose guest work takes seconds on a cold host (dpkg --verify hashes files, pkgmeta reads a
#: .deb's data.tar, a config test starts the daemon's parser): started first in a round.
SLOW_PREFIXES = (packages.PREFIX, pkgmeta.PREFIX, config_test.PREFIX)


def slow_indexes(names: Iterable[str]) -> frozenset[int]:
    return frozenset(i for i, name in enumerate(names) if name.startswith(SLOW_PREFIXES))


class Detector:
    """Runs the probes of ``watch`` against one target.

    Commands (systemctl, config tests, curl, dpkg, ss) run through ``transport``; file and disk work
    goes through ``agent``. Probe names (``unit:nginx.service``, ``config:nginx``,
    ``http:http://127.0.0.1:80/``, ``disk:/``, ``inodes:/``, ``memory:pressure``, ``memory:oom``,
    ``kernel:taint``, ``sysdir:/tmp``, ``system:state``,
    ``jsonl:/var/lib/sampleapp/interactions.jsonl``, ``fstab:/etc/fstab``, ``dpkg:nginx``,
    ``pkgmeta:nginx``, ``symlinks:nginx``, ``writable:/var/lib/sampleapp``, ``port:nginx:80``) are
    stable: a name taken from one run's results re-runs the same check on another host with
    :meth:`run_probe`. When two components name the same unit, URL or file, the first component in the
    watch config owns the probe.

    Probes that need the same fact (the listening sockets, the accounts) share one answer per run
    (:mod:`orchestrator.detect.shared`), and the unit probes of a run share one ``systemctl show`` and
    one ``journalctl`` of their failures in the loop window (:mod:`orchestrator.detect.unit_loops`):
    each call of :meth:`run`, :meth:`run_components` and :meth:`run_named` asks once;
    :meth:`run_probe` asks afresh.
    """

    def __init__(self, watch: WatchConfig, transport: Transport, agent: AgentApi, *,
                 answers: AnswerStore | None = None) -> None:
        """``answers``: ``dpkg --verify`` answers and .deb member headers kept on disk for this host's
        scope (:mod:`orchestrator.detect.answer_store`); without it they live as long as this Detector."""
        self.watch = watch
        self._agent = agent
        self._owners: dict[str, str] = {}
        #: Per probe, the agent reads it starts with, exactly as it asks for them (each probe module
        #: declares its own): the batch answers only identical requests.
        self._reads: dict[str, tuple[AgentRead, ...]] = {}
        #: Per probe, the answers it shares with other probes of a run (asked once per run).
        self._shared: dict[str, tuple[RunShared[Any], ...]] = {}
        self._transport = transport
        #: One ``systemctl show`` for the unit probes of a run, fetched beside the agent reads.
        self._units = units.ShowBatch()
        #: The unit whose current User=/Group= each writable probe judges (asked in the same batch).
        self._identity_units = {writable.probe_name(path): comp.units[0] for comp in watch.components
                                if comp.units for path in comp.writable_paths}
        #: Kept for the Detector's lifetime (one host): later rounds reuse what nothing changed since.
        self._verify_cache = VerifyCache(agent, answers) if isinstance(agent, Fingerprinting) else None
        self._plan = self._build_plan(watch, transport, agent, owners=self._owners, reads=self._reads,
                                      shares=self._shared, unit_batch=self._units, answers=answers,
                                      verify_cache=self._verify_cache)

    def _batched(self, names: Iterable[str], run: Callable[[], T]) -> T:
        """Run ``run`` with the agent reads of the probes ``names`` answered by one batched agent call
        (each agent call is a new interpreter in the guest) and their units' state by one
        ``systemctl show``, both fetched side by side; a failed batch only means no prefetch. The
        answers those probes share are asked once, within this call."""
        wanted = list(names)
        shared = list({id(s): s for name in wanted for s in self._shared.get(name, ())}.values())
        reads = [read for name in wanted for read in self._reads.get(name, ())]
        reads += [read for one in shared for read in one.first_reads]
        unit_names = [n[len(units.PREFIX):] for n in wanted if n.startswith(units.PREFIX) and n in self._plan]
        # The units writable probes take their identity from are asked in the same batch.
        identities = [u for n in wanted if (u := self._identity_units.get(n))]
        unit_names = list(dict.fromkeys([*unit_names, *identities]))
        with contextlib.ExitStack() as scopes:
            for one in shared:
                scopes.enter_context(one.scope())
            return self._prefetched(reads, unit_names, run)

    def _prefetched(self, reads: Sequence[AgentRead], unit_names: Sequence[str], run: Callable[[], T]) -> T:
        agent = self._agent
        prefetching = agent if reads and isinstance(agent, Prefetching) else None

        def fetch_reads() -> None:
            if prefetching is not None:
                try:
                    prefetching.prefetch(reads)
                except VmRepairError as exc:
                    log.debug("batched agent reads failed, probing one by one: %s", exc.message)

        # Each batch keeps its own answers (orchestrator.batchscope): the stability rounds and the
        # regression check run at once on one Detector.
        with contextlib.ExitStack() as scopes:
            scopes.enter_context(self._units.scope())
            if prefetching is not None:
                scopes.enter_context(prefetching.prefetch_scope())
            # The units' state arrives while the probes run (a unit probe waits for its answer); the
            # agent reads, one fast batched call most probes start with, before they start.
            showing = self._units.prefetch_soon(self._transport, unit_names)
            try:
                fetch_reads()
                return run()
            finally:
                if showing is not None:
                    showing.join()

    def verify_packages(self, binaries: Sequence[str]) -> CommandResult | None:
        """``dpkg --verify -- binaries`` on this host; the answer a probe already had is reused while
        nothing it looked at changed (:mod:`orchestrator.detect.verify_cache`). None: dpkg is not
        installed.

        Raises: CommandTimeoutError, TransportError."""
        def run() -> CommandResult | None:
            return packages.run_verify(self._transport, binaries)

        if self._verify_cache is None:
            return run()
        return self._verify_cache.verify(binaries, run)[0]

    def owner_of(self, probe: str) -> str:
        """The component that owns ``probe`` (``host`` for host-wide probes)."""
        return self._owners.get(probe, HOST_COMPONENT)

    @property
    def probe_names(self) -> tuple[str, ...]:
        """Every planned probe, in the order :meth:`run` runs them."""
        return tuple(self._plan)

    def run(self, on_result: Callable[[ProbeResult], None] | None = None) -> DetectionReport:
        """Run every probe; ``on_result`` sees each result as it comes (in the probe's thread).

        Raises:
            TransportError: the target cannot be reached (a probe that merely cannot run on it, such as
                systemd checks without systemd, is reported as unavailable instead).
        """
        results = self._batched(self._plan, lambda: run_probes(self._plan.values(),
                                                               slow=slow_indexes(self._plan),
                                                               on_done=on_result))
        return DetectionReport.from_results(results, [c.name for c in self.watch.components])

    def run_all(self) -> list[ProbeResult]:
        """Every probe's result (the validator's :class:`~orchestrator.validate.probes.ProbeRunner`).

        Raises:
            TransportError: the target cannot be reached.
        """
        return list(self.run().results)

    def run_components(self, components: Collection[str]) -> list[ProbeResult]:
        """Run only the probes owned by ``components`` (``host`` owns the host-wide probes: disk,
        inodes, memory, kernel, sysdir and system)."""
        wanted = set(components)
        names = [name for name in self._plan if self._owners.get(name) in wanted]
        return self._batched(names, lambda: run_probes([self._plan[name] for name in names],
                                                       slow=slow_indexes(names)))

    def run_probe(self, name: str) -> ProbeResult:
        """Run the probe called ``name`` (as found in ``ProbeResult.probe``).

        Raises:
            ConfigError: no probe of that name in this watch config.
            TransportError: the target cannot be reached.
        """
        probe = self._plan.get(name)
        if probe is None:
            raise ConfigError(f"unknown probe {name!r}",
                              remedy=f"known probes: {', '.join(self._plan) or '(none)'}")
        return probe()

    def run_named(self, names: Sequence[str]) -> list[ProbeResult | VmRepairError | KeyError]:
        """Run the named probes side by side (validation's batch); an unknown name or a probe that
        raised becomes that entry's error instead of stopping the others."""

        def one(name: str) -> Callable[[], ProbeResult | VmRepairError | KeyError]:
            def call() -> ProbeResult | VmRepairError | KeyError:
                probe = self._plan.get(name)
                if probe is None:
                    return KeyError(name)
                try:
                    return probe()
                except VmRepairError as exc:
                    return exc
            return call

        return self._batched(names, lambda: run_probes([one(name) for name in names],
                                                       slow=slow_indexes(names)))

    @staticmethod
    def _build_plan(
        watch: WatchConfig, transport: Transport, agent: AgentApi, *, owners: dict[str, str],
        reads: dict[str, tuple[AgentRead, ...]], shares: dict[str, tuple[RunShared[Any], ...]],
        unit_batch: units.ShowBatch | None = None, answers: AnswerStore | None = None,
        verify_cache: VerifyCache | None = None,
    ) -> dict[str, Probe]:
        plan: dict[str, Probe] = {}
        owner = HOST_COMPONENT
        listening = ports.shared_listening(transport, agent)
        accounts = writable.shared_accounts(agent)
        dpkg = packages.shared_answers()
        debs = pkgmeta.DebMetaCache(answers)
        versions = pkgmeta.shared_answers()
        loops = unit_loops.shared_loops(
            transport, [u for comp in watch.components for u in (*comp.units, *comp.sockets)],
            watch.thresholds.restart_loop_minutes)

        def add(name: str, probe: Probe, first_reads: tuple[AgentRead, ...] = (),
                shared: tuple[RunShared[Any], ...] = ()) -> None:
            if name in plan:
                log.debug("probe %s is planned already; keeping the first component's", name)
                return
            plan[name] = probe
            owners[name] = owner
            reads[name] = first_reads
            shares[name] = shared

        thresholds = watch.thresholds
        log_roots = sorted({p for comp in watch.components for p in comp.log_paths})
        # Host-wide probes first: their failures explain many of the component probes' failures.
        for mount in watch.mounts:
            add(disk.disk_probe_name(mount),
                functools.partial(disk.probe_disk, agent, mount, thresholds, log_roots),
                disk.first_reads(mount))
            add(disk.inodes_probe_name(mount),
                functools.partial(disk.probe_inodes, agent, mount, thresholds), disk.first_reads(mount))
        add(memory.PRESSURE_PROBE, functools.partial(memory.probe_pressure, agent, thresholds),
            memory.pressure_reads())
        add(memory.OOM_PROBE, functools.partial(memory.probe_oom, transport, agent, thresholds),
            memory.oom_reads())
        add(kernel.PROBE_NAME, functools.partial(kernel.probe_kernel, transport, agent), kernel.first_reads())
        stats = sysdirs.shared_stats(transport)
        for path, rule in sysdirs.RULES.items():
            add(sysdirs.probe_name(path),
                functools.partial(sysdirs.probe_path, transport, agent, path, stats),
                sysdirs.first_reads(path), shared=(stats,) if rule.is_statted else ())
        add(system.PROBE_NAME, functools.partial(system.probe_system, transport))
        for comp in watch.components:
            owner = comp.name
            for path in comp.fstab:
                add(fstab.probe_name(path), functools.partial(fstab.probe_fstab, agent, comp, path),
                    fstab.first_reads(path))
            if comp.config_test:
                add(config_test.probe_name(comp),
                    functools.partial(config_test.probe_config, transport, comp))
            for path in comp.jsonl_logs:
                add(jsonl.probe_name(path), functools.partial(jsonl.probe_jsonl, agent, comp, path),
                    jsonl.first_reads(path))
            # Sockets are probed like units (a failed socket is a service nobody can reach), never
            # restarted: only ``units`` are.
            for unit in (*comp.units, *comp.sockets):
                add(units.probe_name(unit),
                    functools.partial(units.probe_unit, transport, comp, unit, thresholds, batch=unit_batch,
                                      baseline=watch.baseline_units.get(unit), loops=loops),
                    shared=(loops,))
            for check in comp.http:
                add(http.probe_name(check),
                    functools.partial(http.probe_http, transport, comp, check, thresholds.http_timeout_s,
                                      agent if isinstance(agent, http.HttpAsking) else None))
            _plan_state_probes(add, comp, watch, transport=transport, agent=agent, accounts=accounts,
                               listening=listening, dpkg=dpkg, unit_batch=unit_batch,
                               verify_cache=verify_cache, debs=debs, versions=versions)
        return plan


def _plan_state_probes(
    add: Callable[..., None], comp: Component, watch: WatchConfig, *, transport: Transport, agent: AgentApi,
    accounts: RunShared[Any], listening: RunShared[Any], dpkg: RunShared[Any],
    unit_batch: units.ShowBatch | None, verify_cache: VerifyCache | None,
    debs: pkgmeta.DebMetaCache, versions: RunShared[Any],
) -> None:
    """What the component's packages, files, directories and ports look like."""
    ignored = watch.ignore_paths
    if comp.packages:
        everyone = tuple(dict.fromkeys(p for c in watch.components for p in c.packages))
        add(packages.probe_name(comp),
            functools.partial(packages.probe_packages, transport, comp, dpkg, ignored, run_packages=everyone,
                              verify_cache=verify_cache),
            shared=(dpkg,))
    # The baseline recorded what is below the component's directories too: an ignored path's modes
    # are not compared.
    recorded = {p: v for p, v in watch.baseline_modes.items() if covering(p, ignored) is None}
    if modes.is_planned(comp, recorded):
        add(modes.probe_name(comp), functools.partial(modes.probe_modes, agent, comp, recorded),
            modes.first_reads(comp))
    # Planned whether or not a baseline exists (it checks against the package, not the past); the
    # baseline only spares the paths that are as it recorded them.
    if pkgmeta.is_planned(comp) and isinstance(agent, pkgmeta.DebMetaReading):
        everyone = tuple(dict.fromkeys(p for c in watch.components if pkgmeta.is_planned(c)
                                       for p in c.packages))
        add(pkgmeta.probe_name(comp),
            functools.partial(pkgmeta.probe_pkgmeta, transport, agent, comp, ignored, recorded,
                              answers=versions, run_packages=everyone, debs=debs),
            pkgmeta.first_reads(comp), (versions,))
    if comp.config_paths:
        add(symlinks.probe_name(comp), functools.partial(symlinks.probe_symlinks, agent, comp, ignored),
            symlinks.first_reads(comp))
    for path in comp.writable_paths:
        add(writable.probe_name(path),
            functools.partial(writable.probe_writable, agent, accounts, comp, path, unit_batch),
            writable.first_reads(path), () if writable.runs_as_root(comp) else (accounts,))
    for port in comp.ports:
        add(ports.probe_name(comp, port), functools.partial(ports.probe_port, listening, comp, port),
            shared=(listening,))

