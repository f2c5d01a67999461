"""Restart loops in a window: the one journalctl of a round, its JSON lines read as untrusted input, and
what the unit probe makes of the count."""

from __future__ import annotations

import json

import pytest

from orchestrator.components.config import Thresholds, WatchConfig
from orchestrator.detect import Detector, unit_loops, units
from orchestrator.detect.unit_loops import PROCESS_EXIT_ID, RESTART_SCHEDULED_ID, UNIT_FAILED_ID
from orchestrator.errors import CommandTimeoutError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import CommandResult
from orchestrator.transport.fake import FakeTransport, Handler
from tests.unit.detect.fakes import ACTIVE, FAILED, FakeHost, flapping, target_agent

NGINX = Component("nginx", units=("nginx.service",))
APP = Component("app", units=("app.service",), vital=False)
THRESHOLDS = Thresholds()
#: 2024-05-14T10:00:00Z in µs, as __REALTIME_TIMESTAMP prints it.
T0 = 1_715_680_800_000_000
MINUTE = 60_000_000


def entry(unit: str, message_id: str = UNIT_FAILED_ID, *, at: int = T0, result: str = "exit-code",
          pid: str = "1", exit_code: str = "exited", exit_status: str = "200") -> bytes:
    """One line as systemd 252's ``journalctl -o json --output-fields=MESSAGE_ID,UNIT,UNIT_RESULT,_PID``
    prints it (the __ fields and _BOOT_ID always come along)."""
    fields: dict[str, str] = {
        "__CURSOR": f"s=0b4f3e2c9a1d4f7e8c6b5a4d3c2b1a09;i=1f2a;b=8a5c7e3d2b1f4a6c9e8d7c6b5a4f3e2d;m=9b7c1d;"
                    f"t={at:x};x=3c9e1b2d4f6a8c0e",
        "__REALTIME_TIMESTAMP": str(at), "__MONOTONIC_TIMESTAMP": "10189853",
        "_BOOT_ID": "8a5c7e3d2b1f4a6c9e8d7c6b5a4f3e2d", "MESSAGE_ID": message_id, "UNIT": unit, "_PID": pid,
    }
    if message_id == UNIT_FAILED_ID:
        fields["UNIT_RESULT"] = result
    if message_id == PROCESS_EXIT_ID:
        fields |= {"EXIT_CODE": exit_code, "EXIT_STATUS": exit_status}
    return json.dumps(fields).encode() + b"\n"


def loop(unit: str, turns: int, *, restarts: bool = True, newest: int = T0) -> bytes:
    """A Restart=on-failure loop as it is logged, newest first: each turn a failure, then (except the
    last turn, after which the unit runs) its scheduled restart."""
    out = b""
    for i in range(turns):
        at = newest - i * MINUTE
        if restarts and i:
            out += entry(unit, RESTART_SCHEDULED_ID, at=at + MINUTE // 2)
        out += entry(unit, at=at)
    return out


def parse(text: bytes, watched: tuple[str, ...] = ("nginx.service", "app.service")) -> unit_loops.UnitLoops:
    return unit_loops.parse_entries(text, watched, 10)


# --- the command ---------------------------------------------------------------------------------------

def test_one_journalctl_asks_for_every_unit_of_pid_1_in_the_window() -> None:
    argv = unit_loops.journal_argv(["nginx.service", "app.service", "nginx.service"], 10)
    assert argv == [
        "journalctl", "--no-pager", "--output=json",
        "--output-fields=MESSAGE_ID,UNIT,UNIT_RESULT,_PID,EXIT_CODE,EXIT_STATUS",
        "--since=-10min", "--reverse", "--lines=5000", "_PID=1",
        "MESSAGE_ID=d9b373ed55a64feb8242e02dbe79a49c", "MESSAGE_ID=5eb03494b6584870a536b337290809b3",
        "MESSAGE_ID=98e322203f7a4ed290d09fe03c09fe15", "UNIT=nginx.service", "UNIT=app.service",
    ]


def test_names_that_are_no_unit_names_never_reach_the_argv() -> None:
    argv = unit_loops.journal_argv(["ok.service", "bad name", "-x", "a\nb.service", "x+y"], 5)
    assert "--since=-5min" in argv
    assert [a for a in argv if a.startswith("UNIT=")] == ["UNIT=ok.service"]


def test_a_window_below_one_minute_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        unit_loops.journal_argv(["a.service"], 0)


def test_no_valid_unit_name_asks_nothing() -> None:
    transport = FakeTransport()
    assert unit_loops.read_loops(transport, ["bad name"], 10).records == {}
    assert transport.argvs == []


# --- parsing -------------------------------------------------------------------------------------------

def test_failures_and_scheduled_restarts_are_counted_per_unit() -> None:
    loops = parse(loop("nginx.service", 4) + loop("app.service", 2, newest=T0 - 30 * 1_000_000))
    nginx, app = loops.record("nginx.service"), loops.record("app.service")
    assert (len(nginx.failures), nginx.restarts, nginx.turns) == (4, 3, 4)
    assert nginx.failures == [T0 - i * MINUTE for i in range(4)]   # newest first, as read
    assert (app.turns, loops.skipped) == (2, 0)
    assert loops.record("cron.service").turns == 0


def test_the_newest_process_exit_is_the_units_last_exit_and_is_never_counted() -> None:
    # A start resets ExecMainStatus: a probe sampling the unit mid-start (activating, between two
    # auto-restart waits) has only the journal to say how its last run ended.
    text = (entry("app.service", PROCESS_EXIT_ID, at=T0, exit_status="200") + loop("app.service", 2)
            + entry("app.service", PROCESS_EXIT_ID, at=T0 - 2 * MINUTE, exit_code="killed", exit_status="9"))
    loops = parse(text)
    rec = loops.record("app.service")
    assert (rec.last_exit, rec.turns, loops.skipped) == ("exited 200", 2, 0)
    assert loops.evidence("app.service")["loop_last_exit"] == "exited 200"
    assert "loop_last_exit" not in parse(loop("app.service", 2)).evidence("app.service")


@pytest.mark.parametrize(("code", "status"), [("exited", "-1"), ("exited", "2000"), ("signal", "9"),
                                              ("exited", "200; rm -rf /"), ("", "")])
def test_a_process_exit_systemd_would_not_write_names_no_exit(code: str, status: str) -> None:
    line = entry("app.service", PROCESS_EXIT_ID, exit_code=code, exit_status=status)
    rec = parse(line).record("app.service")
    assert (rec.last_exit, rec.turns) == ("", 0)


def test_a_restart_always_loop_of_clean_exits_counts_its_scheduled_restarts() -> None:
    text = b"".join(entry("app.service", RESTART_SCHEDULED_ID, at=T0 - i * MINUTE) for i in range(3))
    assert parse(text).record("app.service").turns == 3


def test_start_limit_hit_is_named_not_counted() -> None:
    text = entry("nginx.service", result="start-limit-hit") + loop("nginx.service", 2)
    rec = parse(text).record("nginx.service")
    assert (rec.turns, rec.has_given_up, rec.results[0]) == (2, True, "start-limit-hit")


def test_units_not_watched_are_ignored_not_counted_as_bad_lines() -> None:
    loops = parse(loop("other.service", 5))
    assert (loops.records, loops.skipped) == ({}, 0)


@pytest.mark.parametrize("line", [
    b"{" + b'"UNIT": "nginx.service", "x": "' + b"A" * 10_000 + b'"}',   # huge line
    entry("nginx.service").replace(b"nginx.service", b"nginx\xff.service"),   # bad UTF-8
    b"\xef\xbb\xbf\x80\x81 not json at all",
    b'["an", "array"]',
    b"[" * 2000 + b"]" * 2000,                                            # nesting past json's recursion
    b'{"UNIT": "nginx.service"',                                          # cut
    entry("nginx.service", pid="4242"),                                   # logged by someone else
    entry("nginx.service", message_id="0027229ca0644181a76c4e92458afa2e"),   # another of PID 1's ids
    entry("nginx.service").replace(b'"__REALTIME_TIMESTAMP": "', b'"__REALTIME_TIMESTAMP": "-'),
    entry("nginx.service").replace(b'"UNIT": "nginx.service"', b'"UNIT": ["nginx.service", "x"]'),
    entry("nginx.service").replace(b'"UNIT": "nginx.service"', b'"UNIT": [110, 103, 105]'),
    entry('nginx.service"\n_PID=1'),                                       # a name with a quote and a newline
    entry("nginx.service\n"),
])
def test_hostile_lines_are_skipped_and_counted(line: bytes) -> None:
    loops = parse(line.rstrip(b"\n") + b"\n" + entry("nginx.service", at=T0 - MINUTE))
    assert (loops.skipped, loops.record("nginx.service").turns) == (1, 1)


def test_a_hostile_unit_result_is_not_repeated() -> None:
    rec = parse(entry("nginx.service", result="<script>\u202e")).record("nginx.service")
    assert rec.results == ["?"]


def test_evidence_names_count_window_and_last_failure_times() -> None:
    loops = parse(loop("nginx.service", 7) + b"garbage\n")
    evidence = loops.evidence("nginx.service")
    assert evidence == {
        "loop_window": "10 min", "loop_turns": "7", "loop_failures": "7", "loop_restarts_scheduled": "6",
        "loop_last_failures": "2024-05-14T10:00:00Z, 2024-05-14T09:59:00Z, 2024-05-14T09:58:00Z, "
                              "2024-05-14T09:57:00Z, 2024-05-14T09:56:00Z",
        "loop_results": "exit-code", "loop_skipped_lines": "1",
    }


# --- reading -------------------------------------------------------------------------------------------

def read(handler: Handler) -> unit_loops.UnitLoops:
    return unit_loops.read_loops(FakeTransport(handler), ["nginx.service"], 10)


def test_no_journalctl_is_a_reason() -> None:
    loops = read(lambda argv, stdin: (127, b"", b"sh: 1: journalctl: not found\n"))
    assert loops.unavailable_reason == "journalctl is not installed on the target"
    assert loops.evidence("nginx.service") == {"loop_journal": "not read: journalctl is not installed on "
                                                               "the target"}


def test_no_permission_is_a_reason_although_journalctl_exits_0() -> None:
    loops = read(lambda argv, stdin: (0, b"", b"No journal files were opened due to insufficient "
                                             b"permissions.\n"))
    assert loops.unavailable_reason is not None
    assert "cannot read the system journal" in loops.unavailable_reason


def test_a_failing_journalctl_is_a_reason() -> None:
    loops = read(lambda argv, stdin: (1, b"", b"Failed to parse timestamp: -10min\n"))
    assert loops.unavailable_reason == "journalctl exited 1: Failed to parse timestamp: -10min"


def test_a_timeout_is_a_reason() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("journalctl timed out", host="fake")
    assert read(hang).unavailable_reason == "journalctl did not finish within 60 s"


def test_output_past_the_cap_is_truncated_and_its_cut_line_is_not_a_bad_line() -> None:
    full = loop("nginx.service", 3)
    cut = full[:-20]

    def capped(argv: tuple[str, ...], stdin: bytes | None) -> CommandResult:
        return CommandResult(tuple(argv), 0, cut, b"", stdout_dropped=20)
    loops = read(capped)
    assert (loops.is_truncated, loops.skipped, loops.record("nginx.service").turns) == (True, 0, 2)
    assert loops.evidence("nginx.service")["loop_truncated"].startswith("yes")


# --- the unit probe ------------------------------------------------------------------------------------

def probe(props: dict[str, str], journal: bytes, thresholds: Thresholds = THRESHOLDS,
          component: Component = NGINX) -> ProbeResult:
    host = FakeHost(units={component.units[0]: props}, unit_journal=journal)
    transport = host.transport()
    shared = unit_loops.shared_loops(transport, component.units, thresholds.restart_loop_minutes)
    return units.probe_unit(transport, component, component.units[0], thresholds, loops=shared)


def test_a_running_unit_that_looped_in_the_window_is_flapping() -> None:
    result = probe(flapping(1), loop("nginx.service", 3))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.UNIT_FAILED, Severity.WARNING)
    assert result.summary == ("nginx.service is flapping: active now after 3 failures in the last 10 min, "
                              "last at 2024-05-14T10:00:00Z (NRestarts=1 since its last deliberate start)")
    assert result.evidence["loop_turns"] == "3"
    assert result.evidence["ActiveState"] == "active"


def test_a_unit_sampled_while_systemd_starts_it_again_names_its_last_exit_from_the_journal() -> None:
    mid_start = {**flapping(1), "ActiveState": "activating", "SubState": "start", "Result": "success",
                 "ExecMainStatus": "0"}
    result = probe(mid_start, entry("nginx.service", PROCESS_EXIT_ID) + loop("nginx.service", 2))
    assert (result.ok, result.severity) == (False, Severity.CRITICAL)
    assert "starting it again after it exited (exited 200) (automatic restart 1" in result.summary
    assert (result.evidence["ExecMainStatus"], result.evidence["loop_last_exit"]) == ("0", "exited 200")


def test_fewer_failures_than_the_threshold_pass() -> None:
    result = probe(flapping(1), loop("nginx.service", 2))
    assert result.ok
    assert result.evidence["loop_turns"] == "2"


def test_the_thresholds_come_from_the_config() -> None:
    result = probe(flapping(1), loop("nginx.service", 4), Thresholds(restart_loop_failures=5))
    assert result.ok


def test_a_loop_ended_by_a_deliberate_start_passes_with_its_history() -> None:
    # After an in-place restart (NRestarts back to 0) the loop's failures are still in the window; the
    # recheck of that restart must not fail on them.
    result = probe(ACTIVE, loop("nginx.service", 5))
    assert result.ok
    assert result.evidence["loop_ended"].startswith("by a deliberate start")


def test_a_failed_unit_after_a_loop_stays_critical_and_names_the_loop() -> None:
    journal = entry("nginx.service", result="start-limit-hit", at=T0 + 1) + loop("nginx.service", 5)
    result = probe(FAILED, journal, component=Component("app", vital=False, units=("nginx.service",)))
    assert (result.ok, result.severity) == (False, Severity.CRITICAL)
    assert result.summary == ("nginx.service failed (Result=exit-code, ExecMainStatus=1) after 5 failures in "
                              "the last 10 min, last at 2024-05-14T10:00:00Z; systemd gave up "
                              "(start-limit-hit)")


def test_no_journal_leaves_the_unit_probe_to_systemctl() -> None:
    host = FakeHost(units={"nginx.service": ACTIVE}, missing={"journalctl"})
    transport = host.transport()
    shared = unit_loops.shared_loops(transport, ["nginx.service"], 10)
    result = units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS, loops=shared)
    assert (result.ok, result.is_unavailable) == (True, False)
    assert result.evidence["loop_journal"] == "not read: journalctl is not installed on the target"
    # ... and NRestarts still counts as flapping without it.
    host.units["nginx.service"] = flapping(3)
    result = units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS, loops=shared)
    assert (result.ok, result.severity) == (False, Severity.WARNING)


def test_without_systemd_the_journal_is_not_read() -> None:
    host = FakeHost(has_systemd=False)
    transport = host.transport()
    shared = unit_loops.shared_loops(transport, ["nginx.service"], 10)
    assert units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS, loops=shared).is_unavailable
    assert [a[0] for a in transport.argvs] == ["systemctl"]


def test_a_detection_round_reads_the_journal_once_for_every_unit() -> None:
    watch = WatchConfig((NGINX, APP, Component("db", units=("db.service", "db-backup.service"))))
    host = FakeHost(units={"app.service": flapping(2)}, unit_journal=loop("app.service", 3))
    transport = host.transport()
    report = Detector(watch, transport, target_agent()).run()
    journal_calls = [a for a in transport.argvs if a[0] == "journalctl" and "--output=json" in a]
    assert len(journal_calls) == 1
    assert [a for a in journal_calls[0] if a.startswith("UNIT=")] == [
        "UNIT=nginx.service", "UNIT=app.service", "UNIT=db.service", "UNIT=db-backup.service"]
    assert [(i.probe, i.severity) for i in report.issues] == [("unit:app.service", Severity.WARNING)]
    # The same probe name re-runs alone (as in the troubleshooting VM), asking the journal itself.
    detector = Detector(watch, transport, target_agent())
    assert not detector.run_probe("unit:app.service").ok
