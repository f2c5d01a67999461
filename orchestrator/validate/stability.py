"""The stability layer: the component's probes keep passing for a while under moderate load.

A repair that holds for one probe run can still fail a minute later (a unit in a restart loop, a
worker that dies under memory pressure). For ``period_s`` seconds every probe of the component is
re-run every ``interval_s`` seconds while stress-ng loads the guest; the first failure ends the layer
and is recorded with when (seconds into the period, round number) and which probe. A period of 0
runs one round. ``sleep`` and ``clock`` are injected so tests never wait.

Rounds run until one ends at or after the period's end, as always; the last of them is timed to end
there: it starts as long before the deadline as the previous round took (four fifths of it, so that a
round a little faster than the last still reaches it; one that ends early anyway is followed by
another). Started an interval after the previous round, or at the deadline, the last round ran on past
the period by up to a whole round (2.1 s under TCG and load, on every validation). What a round does
not need to wait for, it does not: the check that the load
still runs is asked beside the round's probes (0.2 to 1.3 s under TCG and load, each round), and not in
the first round, which starts right after ``systemd-run`` returned with stress-ng exec'd.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from orchestrator.errors import VmRepairError
from orchestrator.model import ProbeResult
from orchestrator.transport.base import Transport
from orchestrator.validate.load import GuestLoad, random_token
from orchestrator.validate.probes import ProbeRunner, judge
from orchestrator.validate.results import LayerName, LayerRecorder, LayerReport

log = logging.getLogger(__name__)

#: Seconds between the end of a probe round and the start of the next.
PROBE_INTERVAL_S = 2.0
#: The last round starts this share of the previous round's length before the deadline.
LAST_ROUND_LEAD = 0.8


@dataclass(frozen=True)
class StabilityPlan:
    period_s: float
    load: bool
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    interval_s: float = PROBE_INTERVAL_S
    #: Random part of the load unit's name (tests fix it).
    token: Callable[[], str] = random_token
    #: How long before the deadline ``on_last_round`` is called at the latest: the time the caller's
    #: side work is expected to take, so that it ends with the period (0: at the last round).
    side_lead_s: float = 0.0

    def __post_init__(self) -> None:
        """Raises: ValueError: a negative period or lead, or a non-positive interval (a caller bug)."""
        if self.period_s < 0 or self.interval_s <= 0 or self.side_lead_s < 0:
            raise ValueError(f"bad stability plan: period {self.period_s} s, interval {self.interval_s} s, "
                             f"side lead {self.side_lead_s} s")


@dataclass
class _Tally:
    rounds: int = 0
    seconds: float = 0.0
    failure: str = ""


def stable_layer(components: Collection[str], probes: ProbeRunner, transport: Transport,
                 plan: StabilityPlan, *, on_last_round: Callable[[], None] | None = None,
                 keep: Callable[[ProbeResult], bool] | None = None) -> LayerReport:
    """Watch the probes of ``components`` (by ``ProbeResult.component``), those ``keep`` accepts when
    given (the others run but are not judged); the guest load is always stopped at the end.
    ``on_last_round`` is called once, ``plan.side_lead_s`` before the period ends or when the wait
    before its last round begins, whichever comes first (the validator starts its other layers then).

    Raises: only bugs (an error outside our tree from a probe propagates, after the load is stopped).
    """
    rec = LayerRecorder(LayerName.STABLE, plan.clock)
    load = GuestLoad(transport, duration_s=plan.period_s, token=plan.token) if plan.load else None
    outcome = ""
    try:
        if load is None:
            rec.add("load", True, "disabled: the probes ran without load in the guest")
            outcome = _Rounds(rec, frozenset(components), probes, None, plan, on_last_round, keep).watch()
        elif rec.check(f"start load ({load.unit})", lambda: _start(load)):
            outcome = _Rounds(rec, frozenset(components), probes, load, plan, on_last_round, keep).watch()
        else:
            outcome = "could not put the guest under load, so stability was not verified"
    finally:
        # Also after a failed start: a start that timed out may still have launched the unit.
        if load is not None:
            rec.check(f"stop load ({load.unit})", lambda: (True, load.stop()))
    return rec.finish(outcome)


def _start(load: GuestLoad) -> tuple[bool, str]:
    load.start()
    return True, f"stress-ng {' '.join(load.argv[load.argv.index('stress-ng') + 1:])}"


@dataclass
class _Rounds:
    rec: LayerRecorder
    components: frozenset[str]
    probes: ProbeRunner
    load: GuestLoad | None
    plan: StabilityPlan
    on_last_round: Callable[[], None] | None = None
    keep: Callable[[ProbeResult], bool] | None = None
    tallies: dict[str, _Tally] = field(default_factory=dict)

    def watch(self) -> str:
        """Run rounds until the period ends or something fails; record one check per probe."""
        clock = self.plan.clock
        began = clock()
        deadline = began + self.plan.period_s
        # A guard against a clock that never advances (an injected one); a real run never reaches it.
        max_rounds = math.ceil(self.plan.period_s / self.plan.interval_s) + 2
        failure = ""
        rounds = 0
        while not failure and rounds < max_rounds:
            rounds += 1
            round_began = clock()
            failure = self._round(f"at +{round_began - began:.1f} s (round {rounds})", first=rounds == 1)
            now = clock()
            if failure or now >= deadline:
                break
            # The next round is the last when one as long as this one, started an interval from now,
            # would reach the deadline; it then starts so that it ends about there.
            took = now - round_began
            start = min(now + self.plan.interval_s, max(now, deadline - LAST_ROUND_LEAD * took))
            self._wait(now, start, side_at=deadline - self.plan.side_lead_s,
                       last=start + took >= deadline)
        for name, tally in sorted(self.tallies.items()):
            detail = tally.failure or f"passed all {tally.rounds} rounds"
            self.rec.add(f"probe {name}", not tally.failure, detail, tally.seconds)
        if self.load is not None and not failure:
            self.rec.add("load kept running", True,
                         f"stress-ng was running through all {rounds} rounds")
        if failure:
            log.info("stability of %s failed: %s", "/".join(sorted(self.components)), failure)
            return f"failed {failure}"
        under = "under load" if self.load is not None else "without load"
        return (f"stable for {clock() - began:.1f} s {under}: {rounds} rounds, "
                f"{len(self.tallies)} probes passed every round")

    def _wait(self, now: float, until: float, *, side_at: float, last: bool) -> None:
        """Sleep until ``until``, calling ``on_last_round`` on the way when its time comes."""
        if self.on_last_round is not None and (last or side_at <= until):
            if side_at > now and not last:
                self.plan.sleep(side_at - now)
                now = side_at
            self.on_last_round()
            self.on_last_round = None
        if until > now:
            self.plan.sleep(until - now)

    def _round(self, where: str, *, first: bool) -> str:
        """One round; returns a description of the failure, or "" when everything passed. The load is
        checked beside the probes (a load that had ended is the round's failure, whatever they say)."""
        clock = self.plan.clock
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-check") as pool:
            loaded = pool.submit(self._check_load, where) if not first else None
            began = clock()
            try:
                results = self.probes.run_components(self.components)
                if self.keep is not None:
                    results = [r for r in results if self.keep(r)]
            except VmRepairError as exc:
                self.rec.add(f"probes {where}", False, f"probes could not run: {exc.message}",
                             clock() - began)
                return f"{where}: probes could not run"
            seconds = clock() - began
            failure = loaded.result() if loaded is not None else ""
        if failure:
            return failure
        if not results:
            names = ", ".join(sorted(self.components))
            self.rec.add(f"probes {where}", False, f"no probe of {names} ran", seconds)
            return f"{where}: no probe of {names} ran"
        failed = []
        for result in results:
            ok, detail = judge(result)
            tally = self.tallies.setdefault(result.probe, _Tally())
            tally.rounds += 1
            tally.seconds += seconds
            if not ok:
                tally.failure = f"failed {where}: {detail}"
                failed.append(result.probe)
        return f"{where}: {', '.join(failed)} failed" if failed else ""

    def _check_load(self, where: str) -> str:
        if self.load is None:
            return ""
        clock = self.plan.clock
        began = clock()
        try:
            running = self.load.is_running()
        except VmRepairError as exc:
            self.rec.add("load kept running", False, f"could not check {where}: {exc.message}",
                         clock() - began)
            return f"{where}: could not check the load generator"
        if not running:
            self.rec.add("load kept running", False, f"stress-ng had ended {where}", clock() - began)
            return f"{where}: the load generator ended before the period did"
        return ""
