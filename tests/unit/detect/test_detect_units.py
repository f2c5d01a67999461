"""unit:<unit> probes: systemctl show answers for active, failed, flapping, not-found, no systemd."""

from __future__ import annotations

import contextvars
import threading

import pytest

from orchestrator.components.config import Thresholds
from orchestrator.detect import units
from orchestrator.errors import CommandTimeoutError, ConnectError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import (
    ACTIVE,
    FAILED,
    INACTIVE,
    NOT_FOUND,
    FakeHost,
    flapping,
    local_style_missing,
)

NGINX = Component("nginx", units=("nginx.service",))
CRON = Component("cron", vital=False, units=("cron.service",))
THRESHOLDS = Thresholds(unit_restarts_warning=3)


def probe(props: dict[str, str], component: Component = NGINX, unit: str = "nginx.service"):
    host = FakeHost(units={unit: props})
    return units.probe_unit(host.transport(), component, unit, THRESHOLDS)


def test_argv_is_a_list_with_the_unit_after_double_dash() -> None:
    transport = FakeHost().transport()
    units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS)
    assert transport.argvs == [(
        "systemctl", "show",
        "--property=ActiveState,SubState,UnitFileState,NRestarts,Result,LoadState,ExecMainStatus,Type,"
        "ConditionResult,User,Group",
        "--", "nginx.service",
    )]


def test_active_unit_passes_with_a_stable_probe_name() -> None:
    result = probe(ACTIVE)
    assert (result.ok, result.is_unavailable, result.probe) == (True, False, "unit:nginx.service")
    assert result.evidence["ActiveState"] == "active"


def test_failed_unit_is_critical_and_names_the_result() -> None:
    result = probe(FAILED)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.UNIT_FAILED, Severity.CRITICAL)
    assert result.summary == "nginx.service failed (Result=exit-code, ExecMainStatus=1)"


@pytest.mark.parametrize(("restarts", "ok"), [(2, True), (3, False), (40, False)])
def test_flapping_threshold_edge(restarts: int, ok: bool) -> None:
    result = probe(flapping(restarts))
    assert result.ok is ok
    if not ok:
        assert (result.kind, result.severity) == (IssueKind.UNIT_FAILED, Severity.WARNING)
        assert f"{restarts} failures in a window" in result.summary


@pytest.mark.parametrize("sub", ["start", "start-pre", "condition"])
def test_an_automatic_restart_under_way_is_not_up(sub: str) -> None:
    # systemd reset Result and ExecMainStatus when the start began: only NRestarts tells it from ours.
    result = probe({**ACTIVE, "ActiveState": "activating", "SubState": sub, "NRestarts": "1",
                    "Result": "success", "ExecMainStatus": "0"})
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.UNIT_FAILED, Severity.CRITICAL)
    assert "systemd is starting it again after it exited (automatic restart 1" in result.summary


def test_a_deliberate_start_under_way_passes() -> None:
    result = probe({**ACTIVE, "ActiveState": "activating", "SubState": "start", "NRestarts": "0"})
    assert result.ok, result.summary


def test_activating_auto_restart_loop_is_critical_not_just_flapping() -> None:
    # Waiting for the next restart means nothing is running now: critical, not a flapping warning.
    result = probe({**flapping(5), "ActiveState": "activating", "SubState": "auto-restart"})
    assert (result.ok, result.severity) == (False, Severity.CRITICAL)


@pytest.mark.parametrize("component", [NGINX, CRON])
def test_not_found_unit_is_critical_even_for_non_vital_components(component: Component) -> None:
    result = probe(NOT_FOUND, component)
    assert (result.kind, result.severity, result.is_unavailable) == (
        IssueKind.UNIT_INACTIVE, Severity.CRITICAL, False)
    assert "unit file is gone" in result.summary


@pytest.mark.parametrize(("component", "severity"), [(NGINX, Severity.CRITICAL), (CRON, Severity.WARNING)])
def test_enabled_but_inactive_severity_follows_vital(component: Component, severity: Severity) -> None:
    result = probe(INACTIVE, component)
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.UNIT_INACTIVE, severity)
    assert result.summary == "nginx.service is enabled but inactive"


def test_disabled_and_inactive_passes() -> None:
    assert probe({**INACTIVE, "UnitFileState": "disabled"}).ok


def test_inactive_because_its_conditions_failed_passes() -> None:
    # systemd-pstore without a pstore, systemd-fsck-root on a read-write root: enabled, never run.
    result = probe({**INACTIVE, "ConditionResult": "no"})
    assert result.ok
    assert result.summary == "nginx.service is inactive: its start conditions are not met"


def test_enabled_oneshot_that_succeeded_passes_but_a_stopped_daemon_does_not() -> None:
    assert probe({**INACTIVE, "Type": "oneshot", "Result": "success"}).ok
    # `systemctl stop` of a daemon leaves Result=success too: still an enabled unit not running.
    assert not probe({**INACTIVE, "Type": "notify", "Result": "success"}).ok
    assert not probe({**INACTIVE, "Type": "oneshot", "Result": "exit-code"}).ok


def test_masked_beats_failed_conditions() -> None:
    result = probe({**INACTIVE, "LoadState": "masked", "UnitFileState": "masked", "ConditionResult": "no"})
    assert not result.ok


def test_masked_and_inactive_is_an_issue() -> None:
    result = probe({**INACTIVE, "LoadState": "masked", "UnitFileState": "masked"})
    assert (result.ok, result.kind) == (False, IssueKind.UNIT_INACTIVE)


def test_unloadable_unit_file_is_critical() -> None:
    result = probe({**ACTIVE, "LoadState": "bad-setting"})
    assert (result.kind, result.severity) == (IssueKind.UNIT_FAILED, Severity.CRITICAL)


def test_no_systemd_makes_the_probe_unavailable() -> None:
    result = units.probe_unit(FakeHost(has_systemd=False).transport(), NGINX, "nginx.service",
                              THRESHOLDS)
    assert (result.ok, result.is_unavailable) == (False, True)
    assert "does not run systemd as PID 1" in result.summary


@pytest.mark.parametrize("transport", [FakeHost(has_systemctl=False).transport(),
                                       FakeTransport(local_style_missing)])
def test_missing_systemctl_makes_the_probe_unavailable(transport: FakeTransport) -> None:
    result = units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS)
    assert result.is_unavailable
    assert "systemctl is not installed" in result.summary


def test_timeout_makes_the_probe_unavailable() -> None:
    def hang(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))

    assert units.probe_unit(FakeTransport(hang), NGINX, "nginx.service", THRESHOLDS).is_unavailable


def test_unreachable_target_is_an_error_not_a_result() -> None:
    def down(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        raise ConnectError("connection refused", host="fake")

    with pytest.raises(ConnectError):
        units.probe_unit(FakeTransport(down), NGINX, "nginx.service", THRESHOLDS)


def test_answer_without_load_state_is_unavailable() -> None:
    transport = FakeTransport(lambda argv, stdin: (0, b"garbage\n\x1b[31mred\n", b""))
    result = units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS)
    assert result.is_unavailable
    assert "without a LoadState" in result.summary


def test_hostile_values_never_reach_evidence_raw() -> None:
    result = probe({**FAILED, "Result": "\x1b]0;pwned\x07" + "A" * 5000})
    assert all(len(v) <= 256 for v in result.evidence.values())
    assert "\x1b" not in result.summary
    assert "\x1b" not in result.evidence["Result"]


def test_restart_loop_after_a_failed_start_is_a_failure() -> None:
    """Right after a failed start systemd reports ActiveState=activating, SubState=auto-restart: the
    service is not running; treating it as running hid the fault from reproduction in the VM."""
    from orchestrator.components.config import Thresholds
    from orchestrator.detect.units import UnitShow, evaluate
    from orchestrator.model import Component, IssueKind, Severity

    show = UnitShow(properties={
        "LoadState": "loaded", "ActiveState": "activating", "SubState": "auto-restart",
        "UnitFileState": "enabled", "NRestarts": "1", "Result": "exit-code", "ExecMainStatus": "1",
    })
    result = evaluate(Component(name="sampleapp", units=("sampleapp.service",)), "sampleapp.service",
                      show, Thresholds())
    assert not result.ok
    assert result.kind is IssueKind.UNIT_FAILED
    assert result.severity is Severity.CRITICAL
    assert "restart loop" in result.summary


def test_disabled_and_stopped_since_the_baseline_is_an_issue() -> None:
    stopped = {**INACTIVE, "UnitFileState": "disabled"}
    result = units.evaluate(NGINX, "nginx.service", units.UnitShow(stopped), THRESHOLDS,
                            ("active", "enabled"))
    assert (result.ok, result.kind, result.severity) == (False, IssueKind.UNIT_INACTIVE, Severity.CRITICAL)
    assert "the baseline had it enabled and active" in result.summary
    # Off in the baseline too: the operator's choice, as before.
    assert units.evaluate(NGINX, "nginx.service", units.UnitShow(stopped), THRESHOLDS,
                          ("inactive", "disabled")).ok


def test_running_but_disabled_since_the_baseline_will_not_come_back_after_a_boot() -> None:
    running = {**ACTIVE, "UnitFileState": "disabled"}
    result = units.evaluate(NGINX, "nginx.service", units.UnitShow(running), THRESHOLDS,
                            ("active", "enabled"))
    assert (result.ok, result.severity) == (False, Severity.WARNING)
    assert "will not start at the next boot" in result.summary
    assert result.evidence["baseline"] == "active, enabled"
    static = {**ACTIVE, "UnitFileState": "static"}
    assert units.evaluate(NGINX, "nginx.service", units.UnitShow(static), THRESHOLDS,
                          ("active", "enabled")).ok


def test_a_stale_condition_result_does_not_hide_a_unit_disabled_since_the_baseline() -> None:
    # What systemd showed for nginx after `systemctl disable --now nginx` on the patient.
    stopped = {**INACTIVE, "UnitFileState": "disabled", "ConditionResult": "no"}
    result = units.evaluate(NGINX, "nginx.service", units.UnitShow(stopped), THRESHOLDS,
                            ("active", "enabled"))
    assert (result.ok, result.kind) == (False, IssueKind.UNIT_INACTIVE)
    # Without a baseline that ran it, unmet conditions still pass.
    assert units.evaluate(NGINX, "nginx.service", units.UnitShow(stopped), THRESHOLDS).ok


def _gated(host: FakeHost, gate: threading.Event, batch_asked: threading.Event) -> FakeTransport:
    """The host, but its many-unit ``systemctl show`` (the batch's) answers only once ``gate`` is set."""
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show") and argv[2].startswith("--property=Id,"):
            batch_asked.set()
            assert gate.wait(timeout=5)
        return host(argv, stdin)
    return FakeTransport(handler)


def test_a_unit_probe_waits_for_the_batch_under_way_and_does_not_ask_again() -> None:
    """The probes of a round start while the batch's systemctl show runs; a unit probe takes its
    answer from it when it comes rather than starting its own systemctl."""
    gate, asked = threading.Event(), threading.Event()
    transport = _gated(FakeHost(units={"nginx.service": FAILED, "cron.service": ACTIVE}), gate, asked)
    batch = units.ShowBatch()
    with batch.scope():
        showing = batch.prefetch_soon(transport, ["nginx.service", "cron.service"])
        assert asked.wait(timeout=5)
        done: list[ProbeResult] = []
        # In a copy of the batch's context, as run_probes runs each probe.
        probe = threading.Thread(target=contextvars.copy_context().run, args=(lambda: done.append(
            units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS, batch=batch)),))
        probe.start()
        probe.join(timeout=0.2)
        assert probe.is_alive() and not done   # waiting for the batch's answer
        gate.set()
        probe.join(timeout=5)
        showing.join(timeout=5)
    assert [r.kind for r in done] == [IssueKind.UNIT_FAILED]
    assert sum(argv[:2] == ("systemctl", "show") for argv in transport.argvs) == 1


def test_a_unit_the_batch_does_not_ask_is_probed_at_once() -> None:
    gate, asked = threading.Event(), threading.Event()
    transport = _gated(FakeHost(units={"nginx.service": ACTIVE, "cron.service": ACTIVE}), gate, asked)
    batch = units.ShowBatch()
    with batch.scope():
        showing = batch.prefetch_soon(transport, ["nginx.service"])
        assert asked.wait(timeout=5)
        result = units.probe_unit(transport, CRON, "cron.service", THRESHOLDS, batch=batch)
        gate.set()
        showing.join(timeout=5)
    assert result.ok


def test_a_batch_that_fails_leaves_each_probe_to_ask_for_itself() -> None:
    host = FakeHost(units={"nginx.service": ACTIVE})

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show") and argv[2].startswith("--property=Id,"):
            raise ConnectError("connection reset")
        return host(argv, stdin)

    transport = FakeTransport(handler)
    batch = units.ShowBatch()
    with batch.scope():
        batch.prefetch_soon(transport, ["nginx.service"]).join(timeout=5)
        result = units.probe_unit(transport, NGINX, "nginx.service", THRESHOLDS, batch=batch)
    assert result.ok
    assert sum(argv[:2] == ("systemctl", "show") for argv in transport.argvs) == 2
