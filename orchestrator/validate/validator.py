"""Decide whether a repair attempt in the VM worked, in four layers.

1. **resolved** — the probe that found the issue passes (and testinfra sees a unit issue's unit running);
2. **stable** — the component's probes keep passing for ``stable_period_s`` under moderate load;
3. **no regressions** — every probe that passed before the attempt still passes;
4. **core features** — units running and enabled, config test, HTTP answers, listening ports.

The verdict passes only if all four layers pass. Stability is the expensive layer, so it is skipped
(and counts as failed) when the issue is not even resolved; the cheap layers 3 and 4 always run, side by
side with it. In the troubleshooting VM (``side_layers="last_round"``) they are started so that they end
with the stability period (as long before its end as one run of every probe took on that host, half
again under load; at its last round at the latest; after it, when it ended early): they see the host
late in the period, so they also catch what broke late, without adding their own seconds to it. (Started
at the last round, they ran 3.2 s past the period under TCG and load.) On the target, after the VM
has proved exactly that for the same change, they start with the period (``side_layers="start"``):
every probe of the host takes longer than the period's rounds there (10.6 s for 102 probes against
8.2 s, measured under TCG), so starting them at its end put them whole on the repair's critical path.
The repaired component's own probes still run every round to the end of the period.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Collection
from typing import Literal

from orchestrator.components.config import WatchConfig
from orchestrator.detect.common import HOST_COMPONENT
from orchestrator.model import REPORT_ONLY, Component, Issue, ProbeResult
from orchestrator.transport.base import Transport
from orchestrator.validate.backend import GuestHost
from orchestrator.validate.layers import core_features_layer, regressions_layer, resolved_layer
from orchestrator.validate.load import random_token
from orchestrator.validate.probes import ProbeRunner
from orchestrator.validate.results import LayerName, LayerReport, ValidationReport
from orchestrator.validate.stability import PROBE_INTERVAL_S, StabilityPlan, stable_layer

#: How much longer every probe takes while stress-ng loads the guest: the regression check ran 4.5 s
#: under load where the reproduction's run of the same probes took 3.1 s (x1.45, TCG, 2 vCPUs).
LOADED_SLOWDOWN = 1.5

__all__ = ["ProbeRunner", "ValidationReport", "Validator"]

log = logging.getLogger(__name__)


def stable_filter(issue: Issue, component: Component,
                  passed_before: Collection[str] = ()) -> Callable[[ProbeResult], bool]:
    """What the stability layer judges when the repaired component is the host itself (a system
    path's repair, :func:`~orchestrator.pipeline.triage.system_path_component`): the host-wide
    probes of the issue's own family (``sysdir:``). The host's other probes say nothing about a
    path's mode, and some cannot pass in a troubleshooting VM under stress-ng's load (memory
    pressure, the VM's own kernel taint, a degraded VM boot): judged, they would fail every repair for
    what the VM is, not for what the repair did. Any other component (and a disk issue, whose repaired
    component is not the host): every probe, as before.

    Either way a failure marked report-only (:data:`~orchestrator.model.REPORT_ONLY`: a drift from the
    package that may be intended, reported and never repaired) is not judged: the repair of a real
    fault must not wait for a change nobody asked it to undo. A repair that opens a file to every user
    still fails, as that finding is not report-only.

    Nor is a probe that cannot run in the VM and could not before the attempt either (not in
    ``passed_before``, the probes that passed with the fault reproduced), other than the issue's own:
    it says something about the VM (a package's metadata probe needs the ``.deb`` in the apt cache,
    which a host layer does not keep), nothing about the repair. One that ran before and cannot now
    is judged, and fails."""
    before = frozenset(passed_before)

    def judged(result: ProbeResult) -> bool:
        if result.ok:
            return True
        if REPORT_ONLY in result.evidence:
            return False
        return not (result.is_unavailable and result.probe != issue.probe and result.probe not in before)

    if component.name != HOST_COMPONENT or issue.component != HOST_COMPONENT:
        return judged
    family = issue.probe.partition(":")[0] + ":"
    return lambda result: (result.component != HOST_COMPONENT or result.probe.startswith(family)) and (
        judged(result))


class Validator:
    """Validates repair attempts on one host (the VM under repair).

    ``host_transport`` reaches that host; ``probes`` re-runs the detect stage's probes on it.
    ``sleep``/``clock`` pace the stability layer and time every check (inject fakes in tests).
    ``full_round_s``: how long one run of every probe took on that host (the reproduction's), from
    which the side layers' start in the VM is timed (0: at the period's last round).

    Raises (from :meth:`validate`): nothing for guest trouble — an unreachable guest, a missing tool or
    a probe that cannot run becomes a failed check — only bugs propagate.
    """

    def __init__(
        self,
        host_transport: Transport,
        probes: ProbeRunner,
        watch: WatchConfig,
        *,
        stable_period_s: float,
        load: bool,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        probe_interval_s: float = PROBE_INTERVAL_S,
        token: Callable[[], str] = random_token,
        side_layers: Literal["last_round", "start"] = "last_round",
        full_round_s: float = 0.0,
    ) -> None:
        self._transport = host_transport
        self._probes = probes
        self._watch = watch
        self._clock = clock
        self._side_at_start = side_layers == "start"
        lead = max(0.0, full_round_s) * (LOADED_SLOWDOWN if load else 1.0)
        self._plan = StabilityPlan(period_s=max(0.0, stable_period_s), load=load, sleep=sleep,
                                   clock=clock, interval_s=probe_interval_s, token=token, side_lead_s=lead)

    def _core_after(self, warm: concurrent.futures.Future[None], component: Component,
                    guest: GuestHost) -> LayerReport:
        warm.result()   # testinfra's host is learnt once, before checks run on it in threads
        return core_features_layer(component, guest, clock=self._clock,
                                   http_timeout_s=self._watch.thresholds.http_timeout_s)

    def validate(self, issue: Issue, component: Component, baseline_passing: set[str]) -> ValidationReport:
        # A fresh GuestHost per attempt: testinfra caches what it learnt about the host, and the VM
        # may have been reverted since the last attempt.
        guest = GuestHost(self._transport)
        resolved = resolved_layer(issue, self._probes, guest, clock=self._clock)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate") as pool:
            # testinfra learns the guest while the stability period runs (it only reads).
            warm = pool.submit(guest.warm_up)
            side: list[concurrent.futures.Future[LayerReport]] = []

            def start_side_layers() -> None:
                """Layers 3 and 4 read different things (the probes; testinfra's view of the component)
                and change nothing: side by side, each in its own worker."""
                if side:
                    return
                side.append(pool.submit(regressions_layer, baseline_passing, self._probes, clock=self._clock))
                side.append(pool.submit(self._core_after, warm, component, guest))

            if self._side_at_start:
                start_side_layers()
            if resolved.passed:
                # The issue's own component too: a disk issue belongs to the host, not to ``component``.
                watched = {component.name, issue.component}
                stable = stable_layer(watched, self._probes, self._transport, self._plan,
                                      on_last_round=start_side_layers,
                                      keep=stable_filter(issue, component, baseline_passing))
            else:
                stable = LayerReport.skipped(LayerName.STABLE, "not run: the issue is not resolved")
            start_side_layers()
            regressions, core = side[0].result(), side[1].result()
        layers = [resolved, stable, regressions, core]
        report = ValidationReport(all(layer.passed for layer in layers), layers, issue.id, component.name)
        log.info("validation of %s: %s (%s)", issue.id, "passed" if report.passed else "failed",
                 ", ".join(f"{layer.name}={layer.status}" for layer in layers))
        return report
