"""execute_strategy with the shipped strategies against an in-memory VM: what changes, what is refused,
what is skipped, and which operations are recorded for replay on the target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.agent.api import BigFile
from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.errors import AgentFailedError, CommandTimeoutError, RepairStepError, StepNotApplicableError
from orchestrator.model import IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import load_playbooks
from orchestrator.playbooks.placeholders import parse_template
from orchestrator.repair import AttemptLog, check_applicable, execute_strategy
from orchestrator.session.store import new_session
from orchestrator.steps.kinds.jsonl_repair import JsonlRepairStep
from orchestrator.steps.kinds.wait_active import WaitActiveStep
from tests.unit.repair.fakes import (
    HOST,
    NGINX,
    SAMPLEAPP,
    FakeBaseline,
    FakeVm,
    Node,
    context,
    issue,
    vm_agent,
)

GOOD_SITE = b"server {\n\tlisten 80 default_server;\n\troot /var/www/html;\n}\n"
BAD_SITE = b"server {\n\tlisten 80 default_server;\n\tfoo on;\n\troot /var/www/html;\n}\n"
NGINX_CONF = b"http { include /etc/nginx/sites-enabled/*; }\n"
QDIR = "/var/lib/vmrepair/quarantine/STAMP"
NGINX_ISSUE = issue("nginx", IssueKind.CONFIG_INVALID, "nginx -t")
SAMPLEAPP_ISSUE = issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service")


@pytest.fixture(scope="module")
def strategies() -> dict[str, m.Strategy]:
    return {s.name: s for p in load_playbooks(PROJECT_ROOT / "playbooks") for s in p.strategies}


def _nginx_tree(site: bytes = GOOD_SITE) -> dict[str, Node]:
    return {
        "/etc/nginx": Node("dir", mode=0o755),
        "/etc/nginx/nginx.conf": Node("file", NGINX_CONF),
        "/etc/nginx/sites-available": Node("dir", mode=0o755),
        "/etc/nginx/sites-available/default": Node("file", site),
        "/etc/nginx/sites-enabled": Node("dir", mode=0o755),
        "/etc/nginx/sites-enabled/default": Node("symlink", mode=0o777,
                                                 link="/etc/nginx/sites-available/default"),
    }


def _baseline(tree: dict[str, Node]) -> FakeBaseline:
    return FakeBaseline({p: Node(n.type, n.data, n.mode, n.uid, n.gid, n.link) for p, n in tree.items()})


def _commands(vm_transport_argvs: list[tuple[str, ...]], program: str) -> list[tuple[str, ...]]:
    return [a for a in vm_transport_argvs if a[0] == program]


# -- nginx ---------------------------------------------------------------------------------------

def test_restore_offender_puts_back_the_file_the_symlink_points_at(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)))
    ctx = context(vm, NGINX, NGINX_ISSUE, baseline=_baseline(_nginx_tree()),
                  variables={"offender": "/etc/nginx/sites-enabled/default"})
    attempt = execute_strategy(strategies["nginx-restore-offender"], ctx)
    assert vm.agent.fs["/etc/nginx/sites-available/default"].data == GOOD_SITE
    assert vm.agent.fs["/etc/nginx/sites-enabled/default"].type == "symlink"
    assert attempt.status == "ok"
    assert attempt.replay_ops == [{"op": "unit", "unit": "nginx.service", "action": "restart"}]
    assert [(s.kind, s.status) for s in attempt.steps] == [
        ("restore_baseline", "ok"), ("run", "ok"), ("unit", "ok"), ("unit", "ok"), ("wait_active", "ok")]
    assert attempt.steps[1].commands[0].argv == ("nginx", "-t")
    assert attempt.steps[1].exit_status == 0
    assert attempt.steps[3].action == "restart {unit}"
    assert "restored /etc/nginx/sites-available/default" in attempt.steps[0].detail
    transport_argvs = ctx.transport.argvs  # type: ignore[attr-defined]
    assert ("systemctl", "reset-failed", "--", "nginx.service") in transport_argvs
    assert ("systemctl", "restart", "--", "nginx.service") in transport_argvs


def test_restore_offender_quarantines_a_site_the_baseline_does_not_have(
        strategies: dict[str, m.Strategy]) -> None:
    tree = _nginx_tree()
    tree["/etc/nginx/sites-available/shop"] = Node("file", b"server {\n")
    tree["/etc/nginx/sites-enabled/shop"] = Node("symlink", link="/etc/nginx/sites-available/shop")
    vm = FakeVm(vm_agent(tree))
    ctx = context(vm, NGINX, NGINX_ISSUE, baseline=_baseline(_nginx_tree()),
                  variables={"offender": "/etc/nginx/sites-enabled/shop"})
    attempt = execute_strategy(strategies["nginx-restore-offender"], ctx)
    assert "/etc/nginx/sites-enabled/shop" not in vm.agent.fs
    assert vm.agent.fs[f"{QDIR}/etc/nginx/sites-enabled/shop"].link == "/etc/nginx/sites-available/shop"
    # Only enabled sites are moved; an available-but-disabled site is the operator's business.
    assert "/etc/nginx/sites-available/shop" in vm.agent.fs
    assert "left /etc/nginx/sites-available/shop in place" in attempt.steps[0].detail


def test_restore_config_recreates_a_removed_site_symlink(strategies: dict[str, m.Strategy]) -> None:
    tree = _nginx_tree()
    del tree["/etc/nginx/sites-enabled/default"]
    vm = FakeVm(vm_agent(tree))
    ctx = context(vm, NGINX, issue("nginx", IssueKind.HTTP_DOWN, "http://127.0.0.1:80/"),
                  baseline=_baseline(_nginx_tree()))
    execute_strategy(strategies["nginx-restore-config"], ctx)
    assert vm.agent.fs["/etc/nginx/sites-enabled/default"].link == "/etc/nginx/sites-available/default"


def test_restore_that_changes_nothing_is_not_applicable(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree()))
    ctx = context(vm, NGINX, NGINX_ISSUE, baseline=_baseline(_nginx_tree()),
                  variables={"offender": "/etc/nginx/nginx.conf"})
    with pytest.raises(StepNotApplicableError, match="already match the baseline"):
        execute_strategy(strategies["nginx-restore-offender"], ctx)
    assert not _commands(ctx.transport.argvs, "systemctl")  # type: ignore[attr-defined]


def test_restore_baseline_without_a_baseline_is_skipped_before_any_change(
        strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)))
    ctx = context(vm, NGINX, NGINX_ISSUE, baseline=None,
                  variables={"offender": "/etc/nginx/sites-enabled/default"})
    log = AttemptLog("nginx-restore-offender", "nginx-config")
    with pytest.raises(StepNotApplicableError) as info:
        execute_strategy(strategies["nginx-restore-offender"], ctx, attempt_log=log)
    assert "needs the target's baseline" in info.value.message
    assert info.value.strategy == "nginx-restore-offender"
    assert log.status == "skipped" and not log.steps
    assert not ctx.transport.calls and not vm.agent.calls  # type: ignore[attr-defined]


def test_missing_variable_skips_the_strategy_up_front(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)))
    ctx = context(vm, NGINX, NGINX_ISSUE)
    reason = check_applicable(strategies["nginx-quarantine-offender"], ctx)
    assert reason == "step 1 (quarantine) needs {offender}, which has no valid value here"
    with pytest.raises(StepNotApplicableError):
        execute_strategy(strategies["nginx-quarantine-offender"], ctx)


def test_quarantine_moves_an_enabled_site(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)))
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    attempt = execute_strategy(strategies["nginx-quarantine-offender"], ctx)
    assert ("move_file", f"/etc/nginx/sites-enabled/default -> {QDIR}/etc/nginx/sites-enabled/default") \
        in vm.agent.calls
    assert vm.agent.fs["/etc/nginx/sites-available/default"].data == BAD_SITE   # the target is untouched
    assert attempt.replay_ops == [{"op": "unit", "unit": "nginx.service", "action": "restart"}]


@pytest.mark.parametrize("offender", ["/etc/passwd", "/etc/nginx/../shadow", "/etc/nginx", "etc/nginx/x"])
def test_quarantine_outside_the_component_is_refused(strategies: dict[str, m.Strategy],
                                                     offender: str) -> None:
    vm = FakeVm(vm_agent(_nginx_tree()))
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": offender})
    log = AttemptLog("nginx-quarantine-offender", "nginx-config")
    with pytest.raises(RepairStepError, match="refusing") as info:
        execute_strategy(strategies["nginx-quarantine-offender"], ctx, attempt_log=log)
    assert info.value.step == "step 1 (quarantine)"
    assert log.status == "failed" and log.steps[0].status == "failed"
    assert not [c for c in vm.agent.calls if c[0] == "move_file"]


def test_quarantine_of_nginx_conf_is_not_applicable(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree()))
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/nginx.conf"})
    with pytest.raises(StepNotApplicableError,
                       match=r"is not under /etc/nginx/sites-enabled, /etc/nginx/conf\.d"):
        execute_strategy(strategies["nginx-quarantine-offender"], ctx)


def test_quarantine_below_a_symlinked_directory_is_refused(strategies: dict[str, m.Strategy]) -> None:
    tree = _nginx_tree()
    tree["/etc/nginx/sites-enabled"] = Node("symlink", link="/etc")
    tree["/etc/nginx/sites-enabled/default"] = Node("file", b"x")
    vm = FakeVm(vm_agent(tree))
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    with pytest.raises(RepairStepError, match=r"refusing to act below /etc/nginx/sites-enabled: it is not a "
                                              r"plain directory \(l\)"):
        execute_strategy(strategies["nginx-quarantine-offender"], ctx)


def test_pristine_conffile_comes_from_the_cached_deb(strategies: dict[str, m.Strategy]) -> None:
    """The agent reads the file out of the archive: no guest process lists, unpacks or cleans up."""
    deb = "/var/cache/apt/archives/nginx-common_1.22.1-9_all.deb"
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)),
                debs={deb: {"/etc/nginx/sites-available/default": GOOD_SITE}})
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    attempt = execute_strategy(strategies["nginx-pristine-conffile"], ctx)
    assert vm.agent.fs["/etc/nginx/sites-available/default"].data == GOOD_SITE
    argvs = ctx.transport.argvs  # type: ignore[attr-defined]
    assert not [a for a in argvs if a[0] in ("find", "mktemp", "dpkg-deb", "rm")]
    assert [method for method, _ in vm.agent.calls].count("deb_file") == 1
    assert "nginx-common_1.22.1-9_all.deb" in attempt.steps[0].detail


def test_pristine_conffile_is_unpacked_when_the_agent_cannot_read_the_archive(
        strategies: dict[str, m.Strategy]) -> None:
    """A compression the VM's Python cannot stream (zstd): dpkg-deb -x into a private directory,
    removed afterwards."""
    deb = "/var/cache/apt/archives/nginx-common_1.22.1-9_all.deb"
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)),
                debs={deb: {"/etc/nginx/sites-available/default": GOOD_SITE}})
    vm.agent.failures[("deb_file", deb)] = AgentFailedError(
        "vm: agent deb_file: data.tar.zst uses an unsupported compression", host="vm", op="deb_file",
        code="invalid")
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    attempt = execute_strategy(strategies["nginx-pristine-conffile"], ctx)
    assert vm.agent.fs["/etc/nginx/sites-available/default"].data == GOOD_SITE
    argvs = ctx.transport.argvs  # type: ignore[attr-defined]
    tmp = "/var/tmp/vmrepair-conffile.abcd1234"
    assert ("dpkg-deb", "-x", deb, tmp) in argvs and ("rm", "-rf", "--", tmp) in argvs
    assert not [p for p in vm.agent.fs if p.startswith(tmp)]
    assert "nginx-common_1.22.1-9_all.deb" in attempt.steps[0].detail


def test_pristine_conffile_picks_the_installed_version(strategies: dict[str, m.Strategy]) -> None:
    old, new = ("/var/cache/apt/archives/nginx-common_1.22.1-8_all.deb",
                "/var/cache/apt/archives/nginx-common_1%3a1.22.1-9_all.deb")
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)),
                answers={("dpkg-query", "-W"): (0, b"1:1.22.1-9", b"")},
                debs={old: {"/etc/nginx/sites-available/default": b"old"},
                      new: {"/etc/nginx/sites-available/default": GOOD_SITE}})
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    execute_strategy(strategies["nginx-pristine-conffile"], ctx)
    assert vm.agent.fs["/etc/nginx/sites-available/default"].data == GOOD_SITE


def test_pristine_conffile_without_a_cached_deb_is_not_applicable(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)))
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/nginx.conf"})
    with pytest.raises(StepNotApplicableError, match=r"no nginx-common_\*.deb in /var/cache/apt/archives"):
        execute_strategy(strategies["nginx-pristine-conffile"], ctx)


def test_failing_step_fails_the_attempt_with_its_output(strategies: dict[str, m.Strategy]) -> None:
    failed = b"nginx: [emerg] unknown directive \"foo\" in /etc/nginx/sites-enabled/default:3\n"
    vm = FakeVm(vm_agent(_nginx_tree(BAD_SITE)), answers={("nginx", "-t"): (1, b"", failed)})
    ctx = context(vm, NGINX, NGINX_ISSUE, variables={"offender": "/etc/nginx/sites-enabled/default"})
    log = AttemptLog("nginx-quarantine-offender", "nginx-config")
    with pytest.raises(RepairStepError, match=r"\['nginx', '-t'\] exited 1: nginx: \[emerg\] unknown"):
        execute_strategy(strategies["nginx-quarantine-offender"], ctx, attempt_log=log)
    assert [(s.kind, s.status) for s in log.steps] == [("quarantine", "ok"), ("run", "failed")]
    assert log.steps[1].exit_status == 1 and "unknown directive" in log.steps[1].commands[0].output
    assert log.status == "failed"


def test_command_timeout_fails_the_attempt(strategies: dict[str, m.Strategy]) -> None:
    def hang(argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        raise CommandTimeoutError("hung", argv=list(argv))
    vm = FakeVm(vm_agent(_nginx_tree()), answers={("nginx", "-t"): hang})
    ctx = context(vm, NGINX, NGINX_ISSUE)
    with pytest.raises(RepairStepError, match=r"did not finish within 30 s"):
        execute_strategy(strategies["nginx-restart"], ctx)


# -- units ---------------------------------------------------------------------------------------

def _sampleapp_tree() -> dict[str, Node]:
    return {"/etc/systemd/system/sampleapp.service": Node("file", b"[Service]\nExecStart=/usr/bin/python3\n"),
            "/etc/default/sampleapp": Node("file", b"SAMPLEAPP_PORT=8080\n")}


def test_unknown_dropins_are_quarantined_and_reload_is_replayed_first(
        strategies: dict[str, m.Strategy]) -> None:
    tree = _sampleapp_tree()
    tree["/etc/systemd/system/sampleapp.service.d/50-tuning.conf"] = Node("file", b"[Service]\nUser=x\n")
    tree["/etc/systemd/system/sampleapp.service.d/README"] = Node("file", b"not a drop-in")
    vm = FakeVm(vm_agent(tree))
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE, baseline=_baseline(_sampleapp_tree()))
    attempt = execute_strategy(strategies["unit-quarantine-unknown-dropins"], ctx)
    assert f"{QDIR}/etc/systemd/system/sampleapp.service.d/50-tuning.conf" in vm.agent.fs
    assert "/etc/systemd/system/sampleapp.service.d/README" in vm.agent.fs
    assert attempt.replay_ops == [{"op": "daemon_reload"},
                                  {"op": "unit", "unit": "sampleapp.service", "action": "restart"}]


def test_without_a_baseline_only_blamed_dropins_are_quarantined(strategies: dict[str, m.Strategy]) -> None:
    tree = _sampleapp_tree()
    tree["/etc/systemd/system/sampleapp.service.d/10-ok.conf"] = Node("file", b"[Service]\nNice=5\n")
    tree["/etc/systemd/system/sampleapp.service.d/50-bad.conf"] = Node("file", b"[Service]\nBogus=1\n")
    blame = b"/etc/systemd/system/sampleapp.service.d/50-bad.conf:2: Unknown key name 'Bogus'\n"
    vm = FakeVm(vm_agent(tree), answers={("systemd-analyze", "verify"): (0, b"", blame)})
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE)
    attempt = execute_strategy(strategies["unit-quarantine-unknown-dropins"], ctx)
    assert "/etc/systemd/system/sampleapp.service.d/10-ok.conf" in vm.agent.fs
    assert "/etc/systemd/system/sampleapp.service.d/50-bad.conf" not in vm.agent.fs
    assert "blamed by systemd-analyze verify" in attempt.steps[0].detail
    vm.answers[("systemd-analyze", "verify")] = (0, b"", b"")
    with pytest.raises(StepNotApplicableError, match=r"no drop-in of sampleapp\.service is blamed"):
        execute_strategy(strategies["unit-quarantine-unknown-dropins"],
                         context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE))


def test_restore_baseline_quarantines_new_dropins_and_restores_config(
        strategies: dict[str, m.Strategy]) -> None:
    tree = _sampleapp_tree()
    tree["/etc/default/sampleapp"] = Node("file", b"SAMPLEAPP_PORT=not-a-port\n")
    tree["/etc/systemd/system/sampleapp.service.d/50-tuning.conf"] = Node("file", b"[Service]\n")
    vm = FakeVm(vm_agent(tree))
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE, baseline=_baseline(_sampleapp_tree()))
    attempt = execute_strategy(strategies["unit-restore-baseline"], ctx)
    assert vm.agent.fs["/etc/default/sampleapp"].data == b"SAMPLEAPP_PORT=8080\n"
    assert "/etc/systemd/system/sampleapp.service.d/50-tuning.conf" not in vm.agent.fs
    assert attempt.replay_ops[0] == {"op": "daemon_reload"}


def test_wait_active_needs_the_unit_to_stay_active(strategies: dict[str, m.Strategy]) -> None:
    states = iter([b"activating\n", b"active\n", b"failed\n"])
    vm = FakeVm(vm_agent(), answers={("systemctl", "is-active"): lambda argv: (3, next(states), b"")})
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE)
    log = AttemptLog("unit-restart", "unit-dropin")
    with pytest.raises(RepairStepError, match=r"sampleapp.service failed \(last state: failed\)"):
        execute_strategy(strategies["unit-restart"], ctx, attempt_log=log)
    assert log.steps[-1].kind == "wait_active" and log.steps[-1].status == "failed"
    # The journal is fetched to show why.
    assert ("journalctl", "-u", "sampleapp.service", "-n", "30", "--no-pager") in ctx.transport.argvs  # type: ignore[attr-defined]


def test_wait_active_times_out_on_a_unit_that_never_settles(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(), answers={("systemctl", "is-active"): (3, b"activating\n", b"")})
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE)
    with pytest.raises(RepairStepError, match=r"not steadily active after 60 s \(last state: activating\)"):
        execute_strategy(strategies["unit-restart"], ctx)


def test_wait_active_leaves_its_settle_to_the_stability_period_that_follows(
        strategies: dict[str, m.Strategy]) -> None:
    # In the VM a 10 s stability period under load watches sampleapp.service next: the first
    # "active" ends the step instead of waiting the playbook's 3 s settle as well.
    states = iter([b"activating\n", b"active\n", b"failed\n"])
    vm = FakeVm(vm_agent(), answers={("systemctl", "is-active"): lambda argv: (3, next(states), b"")})
    attempt = execute_strategy(strategies["unit-restart"],
                               context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE, settle_watched_s=10.0))
    assert attempt.steps[-1].kind == "wait_active" and attempt.steps[-1].status == "ok"
    assert "settle is left to the 10 s stability period" in attempt.steps[-1].detail


@pytest.mark.parametrize("watched_s", [0.0, 2.0])
def test_wait_active_settles_itself_without_a_long_enough_stability_period(
        strategies: dict[str, m.Strategy], watched_s: float) -> None:
    states = iter([b"activating\n", b"active\n", b"failed\n"])
    vm = FakeVm(vm_agent(), answers={("systemctl", "is-active"): lambda argv: (3, next(states), b"")})
    ctx = context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE, settle_watched_s=watched_s)
    with pytest.raises(RepairStepError, match=r"sampleapp.service failed \(last state: failed\)"):
        execute_strategy(strategies["unit-restart"], ctx)


def test_wait_active_on_a_unit_the_stability_period_does_not_watch_settles_itself(
        strategies: dict[str, m.Strategy]) -> None:
    # nginx's stability probes say nothing about sampleapp.service.
    states = iter([b"active\n", b"failed\n"])
    vm = FakeVm(vm_agent(), answers={("systemctl", "is-active"): lambda argv: (3, next(states), b"")})
    ctx = context(vm, NGINX, NGINX_ISSUE, settle_watched_s=10.0)
    step = WaitActiveStep(parse_template("sampleapp.service"), 60.0, 3.0)
    with pytest.raises(RepairStepError, match=r"sampleapp.service failed"):
        execute_strategy(m.Strategy("w", "d", ("*",), 0.5, False, (step,), "p"), ctx)


def test_reset_failed_of_a_unit_that_is_not_failed_is_tolerated(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(), answers={("systemctl", "reset-failed"): (1, b"", b"Unit not loaded.")})
    attempt = execute_strategy(strategies["unit-restart"], context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE))
    assert attempt.steps[0].status == "ok" and "nothing to reset" in attempt.steps[0].detail
    assert attempt.replay_ops == [{"op": "unit", "unit": "sampleapp.service", "action": "restart"}]


def test_failed_restart_fails_with_the_journal(strategies: dict[str, m.Strategy]) -> None:
    vm = FakeVm(vm_agent(), answers={("systemctl", "restart"): (1, b"", b"Job failed.")})
    with pytest.raises(RepairStepError, match=r"systemctl restart sampleapp\.service exited 1"):
        execute_strategy(strategies["unit-restart"], context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE))


# -- data ----------------------------------------------------------------------------------------

def test_jsonl_repair_then_check_then_restart(strategies: dict[str, m.Strategy]) -> None:
    log_path = "/var/lib/sampleapp/interactions.jsonl"
    agent = vm_agent({log_path: Node("file", b'{"a": 1}\n' * 9 + b"garbage\n")})
    vm = FakeVm(agent)
    attempt = execute_strategy(strategies["jsonl-repair-restart"], context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE))
    assert ("jsonl_repair", log_path) in agent.calls
    assert "kept 9, repaired 0, quarantined 1" in attempt.steps[0].detail
    assert attempt.replay_ops == [{"op": "jsonl_repair", "path": "/var/lib/sampleapp/interactions.jsonl"},
                                  {"op": "unit", "unit": "sampleapp.service", "action": "restart"}]
    # A sound log is not "repaired": the strategy does not apply.
    with pytest.raises(StepNotApplicableError, match="no corrupt lines to repair"):
        execute_strategy(strategies["jsonl-repair-restart"], context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE))


def test_jsonl_repair_refuses_a_file_that_is_not_a_component_log() -> None:
    from orchestrator.playbooks.placeholders import parse_template
    step = JsonlRepairStep(False, (parse_template("{subject}"),))
    strategy = m.Strategy("x", "d", ("*",), 0.5, False, (step,), "p")
    vm = FakeVm(vm_agent())
    ctx = context(vm, SAMPLEAPP, issue("sampleapp", IssueKind.LOG_CORRUPT, "/etc/shadow"))
    with pytest.raises(RepairStepError, match=r"refusing '\{subject\}': not a jsonl log of sampleapp"):
        execute_strategy(strategy, ctx)


def test_reduce_logs_rotates_only_big_text_logs_under_log_paths(strategies: dict[str, m.Strategy]) -> None:
    agent = vm_agent({"/var/log/sampleapp/debug.log": Node("file", b"x" * 10),
                       "/var/lib/sampleapp/interactions.jsonl": Node("file", b"{}\n")})
    agent.big = [BigFile("/var/log/sampleapp/debug.log", 5 * 2**30),
                 BigFile("/var/log/journal/abc/system.journal", 2**30),
                 BigFile("/var/log/nginx/access.log.2.gz", 2**28),
                 BigFile("/var/lib/sampleapp/interactions.jsonl", 2**30)]
    vm = FakeVm(agent)
    ctx = context(vm, HOST, issue("host", IssueKind.DISK_FULL, "/"))
    attempt = execute_strategy(strategies["disk-compress-big-logs"], ctx)
    assert ("big_files", "/var/log,/var/log/nginx,/var/log/sampleapp") in agent.calls
    assert [c for c in agent.calls if c[0] == "rotate_log"] == [
        ("rotate_log", "/var/log/sampleapp/debug.log compress")]
    assert attempt.replay_ops == [{"op": "rotate_log", "path": "/var/log/sampleapp/debug.log",
                                   "method": "compress"}]
    assert "outside log_paths" in attempt.steps[0].detail


def test_reduce_logs_with_nothing_big_is_not_applicable(strategies: dict[str, m.Strategy]) -> None:
    ctx = context(FakeVm(vm_agent()), HOST, issue("host", IssueKind.DISK_FULL, "/"))
    with pytest.raises(StepNotApplicableError, match="no log file of 16777216 bytes or more"):
        execute_strategy(strategies["disk-truncate-big-logs"], ctx)


def test_reduce_logs_stays_on_the_full_mount(strategies: dict[str, m.Strategy]) -> None:
    agent = vm_agent()
    agent.big = [BigFile("/var/log/sampleapp/debug.log", 2**30)]
    agent.file("/var/log/sampleapp/debug.log", b"x")
    ctx = context(FakeVm(agent), HOST, issue("host", IssueKind.DISK_FULL, "/srv"))
    with pytest.raises(StepNotApplicableError):
        execute_strategy(strategies["disk-compress-big-logs"], ctx)


# -- session -------------------------------------------------------------------------------------

def test_every_step_is_an_evidence_event(strategies: dict[str, m.Strategy], tmp_path: Path) -> None:
    session = new_session(tmp_path / "sessions", "target")
    vm = FakeVm(vm_agent())
    attempt = execute_strategy(strategies["unit-restart"],
                               context(vm, SAMPLEAPP, SAMPLEAPP_ISSUE, session=session))
    events = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["started", "step", "step", "step", "finished"]
    assert events[2]["commands"][0]["argv"] == ["systemctl", "restart", "--", "sampleapp.service"]
    assert events[-1]["replay_ops"] == attempt.replay_ops
    assert json.dumps(attempt.as_dict())
