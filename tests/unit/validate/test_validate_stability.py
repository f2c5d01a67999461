"""The stability layer: rounds paced by an injected clock, the guest load always stopped."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import ConnectError
from orchestrator.model import ProbeResult
from orchestrator.transport.fake import FakeTransport
from orchestrator.validate.results import LayerReport, LayerStatus
from orchestrator.validate.stability import StabilityPlan, stable_layer
from tests.unit.validate.fakes import FakeClock, FakeGuest, FakeProbes, result

UNIT = "vmrepair-load-0badcafe"


def _plan(clock: FakeClock, period: float, *, load: bool = True) -> StabilityPlan:
    return StabilityPlan(period_s=period, load=load, sleep=clock.sleep, clock=clock,
                         token=lambda: "0badcafe")


def _run(probes: FakeProbes, transport: FakeTransport, clock: FakeClock, period: float,
         *, load: bool = True) -> LayerReport:
    return stable_layer({"nginx"}, probes, transport, _plan(clock, period, load=load))


def test_period_zero_runs_one_round_under_load(probes: FakeProbes, guest: FakeGuest,
                                               transport: FakeTransport, clock: FakeClock) -> None:
    layer = _run(probes, transport, clock, 0)
    assert layer.status is LayerStatus.PASSED, layer
    assert probes.calls == ["*"]
    assert clock.sleeps == []
    assert transport.argvs[0] == (
        "systemd-run", "--unit", UNIT, "--collect", "--quiet", "--property=Type=exec", "stress-ng",
        "--cpu", "1", "--cpu-load", "50", "--vm", "1", "--vm-bytes", "32M", "--timeout", "5s", "--quiet")
    assert transport.argvs[-1] == ("systemctl", "--no-block", "stop", "--", UNIT)
    assert guest.load_stops == [UNIT]
    # unit:cron.service belongs to another component and is not watched here.
    assert [c.name for c in layer.checks] == [
        f"start load ({UNIT})", "probe config:nginx", "probe http:http://127.0.0.1:80/",
        "probe unit:nginx.service", "load kept running", f"stop load ({UNIT})"]
    assert layer.detail == "stable for 0.0 s under load: 1 rounds, 3 probes passed every round"


def test_rounds_every_two_seconds_without_wall_time(probes: FakeProbes, transport: FakeTransport,
                                                    clock: FakeClock) -> None:
    began = time.monotonic()
    layer = _run(probes, transport, clock, 10)
    assert time.monotonic() - began < 1
    assert layer.passed
    assert clock.sleeps == [2.0] * 5
    assert probes.calls == ["*"] * 6
    assert "--timeout" in transport.argvs[0]
    assert transport.argvs[0][transport.argvs[0].index("--timeout") + 1] == "15s"
    assert layer.detail == "stable for 10.0 s under load: 6 rounds, 3 probes passed every round"
    assert all(c.detail == "passed all 6 rounds" for c in layer.checks if c.name.startswith("probe"))


def test_the_last_sleep_is_cut_to_the_deadline(probes: FakeProbes, transport: FakeTransport,
                                               clock: FakeClock) -> None:
    _run(probes, transport, clock, 5)
    assert clock.sleeps == [2.0, 2.0, 1.0]


def test_a_failure_ends_the_period_and_says_when_and_which(probes: FakeProbes, guest: FakeGuest,
                                                          transport: FakeTransport,
                                                          clock: FakeClock) -> None:
    start = clock.now

    def flap(_name: str) -> None:
        probes.state["http:http://127.0.0.1:80/"] = clock.now - start < 4

    probes.before = flap
    layer = _run(probes, transport, clock, 30)
    assert layer.status is LayerStatus.FAILED
    assert probes.calls == ["*"] * 3  # stopped at the first failing round, not after 30 s
    failed = {c.name: c.detail for c in layer.failed_checks}
    assert failed == {"probe http:http://127.0.0.1:80/": "failed at +4.0 s (round 3): broken"}
    assert layer.detail == "failed at +4.0 s (round 3): http:http://127.0.0.1:80/ failed"
    assert guest.load_stops == [UNIT]


def test_load_is_stopped_even_when_a_probe_raises(probes: FakeProbes, guest: FakeGuest,
                                                  transport: FakeTransport, clock: FakeClock) -> None:
    def boom(_name: str) -> None:
        if clock.now > 1002:
            raise RuntimeError("bug in a probe")

    probes.before = boom
    with pytest.raises(RuntimeError, match="bug in a probe"):
        _run(probes, transport, clock, 10)
    assert guest.load_stops == [UNIT]
    assert guest.load_running is False


def test_a_probe_transport_error_fails_the_layer_and_stops_the_load(
        probes: FakeProbes, guest: FakeGuest, transport: FakeTransport, clock: FakeClock) -> None:
    def unreachable(_name: str) -> None:
        raise ConnectError("vm: connection reset")

    probes.before = unreachable
    layer = _run(probes, transport, clock, 10)
    assert not layer.passed
    assert [(c.name, c.detail) for c in layer.failed_checks] == [
        ("probes at +0.0 s (round 1)", "probes could not run: vm: connection reset")]
    assert guest.load_stops == [UNIT]


def test_load_that_cannot_start_fails_the_layer(probes: FakeProbes, guest: FakeGuest,
                                                transport: FakeTransport, clock: FakeClock) -> None:
    guest.has_stress = False
    layer = _run(probes, transport, clock, 10)
    assert layer.status is LayerStatus.FAILED
    assert layer.detail == "could not put the guest under load, so stability was not verified"
    assert probes.calls == []
    start = layer.checks[0]
    assert not start.ok
    assert "203/EXEC" in start.detail
    # stop is still attempted; an already-gone unit is fine.
    assert layer.checks[-1].name == f"stop load ({UNIT})"
    assert layer.checks[-1].detail == "already finished"


def test_load_that_dies_early_fails_the_layer(probes: FakeProbes, guest: FakeGuest,
                                              transport: FakeTransport, clock: FakeClock) -> None:
    def sleep_then_oom(seconds: float) -> None:
        # Between the rounds at +4 and +6 (the load is checked beside each round's probes).
        clock.sleep(seconds)
        if clock.now >= 1005:
            guest.load_running = False

    layer = stable_layer({"nginx"}, probes, transport, StabilityPlan(
        period_s=10, load=True, sleep=sleep_then_oom, clock=clock, token=lambda: "0badcafe"))
    assert not layer.passed
    assert [(c.name, c.detail) for c in layer.failed_checks] == [
        ("load kept running", "stress-ng had ended at +6.0 s (round 4)")]


def test_without_load_nothing_is_started(probes: FakeProbes, transport: FakeTransport,
                                         clock: FakeClock) -> None:
    layer = _run(probes, transport, clock, 4, load=False)
    assert layer.passed
    assert transport.argvs == []
    assert layer.checks[0].detail == "disabled: the probes ran without load in the guest"
    assert layer.detail.startswith("stable for 4.0 s without load: 3 rounds")


@pytest.mark.parametrize(("results", "detail"), [
    ([result("unit:nginx.service", False, unavailable=True, summary="no systemd")],
     "failed at +0.0 s (round 1): probe could not run: no systemd"),
    ([result("unit:cron.service", component="cron")], "no probe of nginx ran"),
])
def test_unavailable_or_missing_probes_fail(results: list[ProbeResult], detail: str,
                                            transport: FakeTransport, clock: FakeClock) -> None:
    class Probes(FakeProbes):
        def run_all(self) -> list[ProbeResult]:
            return results

    layer = _run(Probes(), transport, clock, 0)
    assert not layer.passed
    assert detail in [c.detail for c in layer.failed_checks]


def test_a_stop_that_fails_is_recorded(probes: FakeProbes, guest: FakeGuest, transport: FakeTransport,
                                       clock: FakeClock) -> None:
    guest.commands = {}
    original = guest.__call__

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:3] == ("systemctl", "--no-block", "stop"):
            return 1, b"", b"Failed to stop: Access denied\n"
        return original(argv, stdin)

    layer = stable_layer({"nginx"}, probes, FakeTransport(handler, host="vm"), _plan(clock, 0))
    stop = layer.checks[-1]
    assert (stop.ok, stop.name) == (False, f"stop load ({UNIT})")
    assert "exited 1: Failed to stop: Access denied" in stop.detail
    assert not layer.passed


def test_plan_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="bad stability plan"):
        StabilityPlan(period_s=5, load=False, sleep=time.sleep, clock=time.monotonic, interval_s=0)


def test_the_last_round_is_announced_once_before_its_wait(probes: FakeProbes, transport: FakeTransport,
                                                          clock: FakeClock) -> None:
    """The validator starts its other layers then, so they see the host at the end of the period."""
    announced: list[int] = []
    stable_layer({"nginx"}, probes, transport, _plan(clock, 6),
                 on_last_round=lambda: announced.append(len(clock.sleeps)))
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert announced == [2]   # after two waits, before the third (the last) one


def test_a_period_that_ends_at_its_first_round_announces_nothing(probes: FakeProbes, transport: FakeTransport,
                                                                 clock: FakeClock) -> None:
    announced: list[bool] = []
    stable_layer({"nginx"}, probes, transport, _plan(clock, 0), on_last_round=lambda: announced.append(True))
    assert announced == []


def test_the_last_round_is_announced_when_rounds_take_time(probes: FakeProbes, transport: FakeTransport,
                                                           clock: FakeClock) -> None:
    """Rounds of 1 s, waits of 2 s, a 10 s period: rounds start at +0, +3, +6 and +9; the one at +9
    ends after the deadline, so it is the last, and the side layers are started before its wait
    (not after the period, as when only the wait was compared with the time left)."""
    announced: list[int] = []

    def round_takes_a_second(name: str) -> None:
        clock.now += 1.0

    probes.before = round_takes_a_second
    layer = stable_layer({"nginx"}, probes, transport, _plan(clock, 10),
                         on_last_round=lambda: announced.append(len(clock.sleeps)))
    assert layer.passed
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert len(probes.calls) == 4
    assert announced == [2]   # after the round at +6, before the wait that precedes the round at +9


def test_the_last_round_is_timed_to_end_about_the_deadline(probes: FakeProbes, transport: FakeTransport,
                                                         clock: FakeClock) -> None:
    """Rounds of 1 s, a 5 s period: rounds at +0 and +3, then the last at +4.2 (four fifths of a round
    before the deadline), ending at +5.2; started at the deadline it ended at +6."""
    start = clock.now
    began: list[float] = []

    def round_takes_a_second(name: str) -> None:
        began.append(clock.now - start)
        clock.now += 1.0

    probes.before = round_takes_a_second
    layer = stable_layer({"nginx"}, probes, transport, _plan(clock, 5))
    assert layer.passed
    assert began == pytest.approx([0.0, 3.0, 4.2])
    assert clock.now - start == pytest.approx(5.2)


def test_a_last_round_that_ends_before_the_deadline_is_followed_by_another(
        probes: FakeProbes, transport: FakeTransport, clock: FakeClock) -> None:
    """The period ends only with a round that ends at or after its end: rounds of 1 s, then one of
    0.5 s timed as the last ends at +4.7, so another follows at once."""
    start = clock.now
    began: list[float] = []
    lengths = iter([1.0, 1.0, 0.5, 1.0])

    def timed_round(name: str) -> None:
        began.append(clock.now - start)
        clock.now += next(lengths)

    probes.before = timed_round
    layer = stable_layer({"nginx"}, probes, transport, _plan(clock, 5))
    assert layer.passed
    assert began == pytest.approx([0.0, 3.0, 4.2, 4.7])
    assert clock.now - start >= 5


def test_the_load_is_checked_beside_each_round_but_the_first(probes: FakeProbes, transport: FakeTransport,
                                                              clock: FakeClock) -> None:
    """The first round follows systemd-run, which returned with stress-ng exec'd: no check there."""
    layer = _run(probes, transport, clock, 4)
    assert layer.passed
    checks = [argv for argv in transport.argvs if argv[:2] == ("systemctl", "is-active")]
    assert len(probes.calls) == 3 and len(checks) == 2
    assert layer.detail.startswith("stable for 4.0 s under load: 3 rounds")


def test_the_side_work_is_announced_its_lead_before_the_deadline(probes: FakeProbes, transport: FakeTransport,
                                                                 clock: FakeClock) -> None:
    """A 10 s period with a 5 s lead: the wait from +4 to +6 is split at +5, where the side work starts,
    so that it can end with the period; the rounds keep their pace."""
    start = clock.now
    announced: list[float] = []
    plan = StabilityPlan(period_s=10, load=True, sleep=clock.sleep, clock=clock, token=lambda: "0badcafe",
                         side_lead_s=5)
    layer = stable_layer({"nginx"}, probes, transport, plan,
                         on_last_round=lambda: announced.append(clock.now))
    assert layer.passed
    assert announced == [start + 5]
    assert clock.sleeps == [2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
    assert len(probes.calls) == 6


def test_a_lead_longer_than_the_period_announces_at_the_first_wait(
        probes: FakeProbes, transport: FakeTransport, clock: FakeClock) -> None:
    start = clock.now
    announced: list[float] = []
    plan = StabilityPlan(period_s=4, load=False, sleep=clock.sleep, clock=clock, side_lead_s=30)
    stable_layer({"nginx"}, probes, transport, plan, on_last_round=lambda: announced.append(clock.now))
    assert announced == [start]


def test_plan_rejects_a_negative_lead() -> None:
    with pytest.raises(ValueError, match="bad stability plan"):
        StabilityPlan(period_s=5, load=False, sleep=time.sleep, clock=time.monotonic, side_lead_s=-1)
