"""A start vmrepair asks for is the start NRestarts counts from: systemd's merged automatic restart."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator import systemd
from orchestrator.systemd.bounded import bounded_restart
from orchestrator.systemd.counter import counts_an_automatic_restart, own_the_start, restart_count
from orchestrator.transport.base import CommandResult
from orchestrator.transport.fake import FakeTransport
from tests.unit.systemd.fakes import Clock, FakeSystemd, Handler, hangs_on

SHOW = ("systemctl", "show", "--property=ActiveState,SubState,NRestarts", "--", "app.service")
RESET = ("systemctl", "reset-failed", "--", "app.service")
RESTART = ("systemctl", "restart", "--", "app.service")


def shows(text: str) -> Handler:
    """A FakeTransport handler: ``systemctl show`` answers ``text``, everything else exits 0."""
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (0, text.encode(), b"") if argv[1] == "show" else (0, b"", b"")
    return handler


@pytest.mark.parametrize("value", ["²", "-3", "99999999999", "3 ", "", "0x10", "٣"])
def test_hostile_restart_counts_read_as_zero(value: str) -> None:
    assert restart_count({"NRestarts": value}) == 0


def test_restart_count_is_read() -> None:
    assert restart_count({"NRestarts": "12"}) == 12


@pytest.mark.parametrize(("active", "sub", "count", "counts"), [
    ("active", "running", "1", True),
    ("activating", "start", "2", False),      # not up yet: it may fail again, and that must show
    ("reloading", "reload", "1", True),
    ("active", "running", "0", False),        # the restart flushed the count: nothing to do
    ("activating", "auto-restart", "1", False),  # died again and waits: its failure must stay visible
    ("failed", "failed", "1", False),
    ("inactive", "dead", "1", False),
    ("active", "running", "x", False),
])
def test_only_a_running_unit_that_still_counts_automatic_restarts_is_reset(
        active: str, sub: str, count: str, counts: bool) -> None:
    assert counts_an_automatic_restart({"ActiveState": active, "SubState": sub, "NRestarts": count}) is counts


def test_own_the_start_resets_the_count_the_merged_restart_left() -> None:
    transport = FakeTransport(shows("ActiveState=active\nSubState=running\nNRestarts=1\n"))
    assert own_the_start(lambda argv: transport.run(argv, timeout=5), "app.service")
    assert transport.argvs == [SHOW, RESET]


def test_own_the_start_leaves_a_flushed_count_alone() -> None:
    transport = FakeTransport(shows("ActiveState=active\nSubState=running\nNRestarts=0\n"))
    assert not own_the_start(lambda argv: transport.run(argv, timeout=5), "app.service")
    assert transport.argvs == [SHOW]


@pytest.mark.parametrize("answer", [None, CommandResult(SHOW, 1, b"ActiveState=active\nNRestarts=3\n", b"")])
def test_an_unanswered_show_changes_nothing(answer: CommandResult | None) -> None:
    asked: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> CommandResult | None:
        asked.append(argv)
        return answer

    assert not own_the_start(run, "app.service")
    assert [tuple(a) for a in asked] == [SHOW]


def test_a_restart_that_systemd_merged_into_its_own_start_counts_from_the_restart() -> None:
    transport = FakeTransport(shows("ActiveState=active\nSubState=running\nNRestarts=1\n"))
    assert systemd.restart(transport, "app.service").succeeded
    assert transport.argvs == [RESET, RESTART, SHOW, RESET]


@pytest.mark.parametrize("verb", ["stop", "reload"])
def test_verbs_that_start_nothing_do_not_look_at_the_count(verb: str) -> None:
    transport = FakeTransport(shows("ActiveState=active\nSubState=running\nNRestarts=1\n"))
    systemd.reset_failed_then(transport, verb, "app.service")
    assert transport.argvs == [RESET, ("systemctl", verb, "--", "app.service")]


def test_a_failed_restart_does_not_look_at_the_count() -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return (1, b"", b"Job failed.\n") if argv[1] == "restart" else (0, b"", b"")

    transport = FakeTransport(handler)
    assert not systemd.restart(transport, "app.service").succeeded
    assert transport.argvs == [RESET, RESTART]


def test_a_show_that_hangs_after_the_restart_leaves_the_restart_succeeded() -> None:
    transport = FakeTransport(hangs_on("show"))
    assert systemd.restart(transport, "app.service").succeeded
    assert transport.argvs == [RESET, RESTART, SHOW]


def test_a_bounded_restart_that_started_counts_from_it() -> None:
    fake, clock = FakeSystemd(), Clock()
    fake.unit("app.service").n_restarts = 2
    outcome = bounded_restart(FakeTransport(fake), "app.service", clock=clock, sleep=clock.sleep)
    assert outcome.succeeded
    assert fake.argvs[-2:] == [SHOW, RESET]


def test_a_bounded_restart_that_started_cleanly_resets_nothing_more() -> None:
    fake, clock = FakeSystemd(), Clock()
    outcome = bounded_restart(FakeTransport(fake), "app.service", clock=clock, sleep=clock.sleep)
    assert outcome.succeeded
    assert fake.argvs[-1] == SHOW
    assert fake.argvs.count(RESET) == 1   # the one before the restart
