"""restore_baseline details: modes, missing directories, symlinks in the way, placeholders, roots."""

from __future__ import annotations

import pytest

from orchestrator.errors import RepairStepError, StepNotApplicableError
from orchestrator.model import IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.placeholders import parse_template
from orchestrator.repair import execute_strategy
from orchestrator.steps.kinds.restore_baseline import RestoreBaselineStep
from tests.unit.repair.fakes import SAMPLEAPP, FakeBaseline, FakeVm, Node, context, issue, vm_agent

ISSUE = issue("sampleapp", IssueKind.UNIT_FAILED, "sampleapp.service")
DEFAULTS = "/etc/default/sampleapp"
UNIT_FILE = "/etc/systemd/system/sampleapp.service"


def _strategy(*paths: str, scopes: tuple[str, ...] = (), added: tuple[str, ...] = ()) -> m.Strategy:
    step = RestoreBaselineStep(scopes, tuple(parse_template(p) for p in paths), added)
    return m.Strategy("restore", "d", ("*",), 0.5, False, (step,), "p")


def _baseline() -> FakeBaseline:
    return FakeBaseline(placeholders={"/opt/sampleapp/big.bin"}, fs={
        DEFAULTS: Node("file", b"SAMPLEAPP_PORT=8080\n", 0o644),
        UNIT_FILE: Node("file", b"[Service]\n", 0o644),
        "/opt/sampleapp": Node("dir", mode=0o755),
        "/opt/sampleapp/sampleapp": Node("dir", mode=0o750, uid=0, gid=998),
        "/opt/sampleapp/sampleapp/app.py": Node("file", b"print('ok')\n", 0o644),
        "/opt/sampleapp/big.bin": Node("file", b"", 0o644),
    })


def test_a_root_that_is_a_file_can_be_restored() -> None:
    vm = FakeVm(vm_agent({DEFAULTS: Node("file", b"SAMPLEAPP_PORT=oops\n")}))
    ctx = context(vm, SAMPLEAPP, ISSUE, baseline=_baseline())
    execute_strategy(_strategy(DEFAULTS), ctx)
    assert vm.agent.fs[DEFAULTS].data == b"SAMPLEAPP_PORT=8080\n"


def test_paths_outside_the_component_are_refused() -> None:
    vm = FakeVm(vm_agent({"/etc/passwd": Node("file", b"root:x:0:0\n")}))
    with pytest.raises(RepairStepError, match="refusing /etc/passwd: not below the sampleapp paths"):
        execute_strategy(_strategy("/etc/passwd"), context(vm, SAMPLEAPP, ISSUE, baseline=_baseline()))


def test_mode_change_alone_is_restored() -> None:
    vm = FakeVm(vm_agent({DEFAULTS: Node("file", b"SAMPLEAPP_PORT=8080\n", 0o666)}))
    execute_strategy(_strategy(DEFAULTS), context(vm, SAMPLEAPP, ISSUE, baseline=_baseline()))
    assert vm.agent.fs[DEFAULTS].mode == 0o644


def test_missing_directory_is_recreated_before_its_files() -> None:
    vm = FakeVm(vm_agent({"/opt/sampleapp": Node("dir", mode=0o755)}))
    ctx = context(vm, SAMPLEAPP, ISSUE, baseline=_baseline())
    attempt = execute_strategy(_strategy("/opt/sampleapp"), ctx)
    node = vm.agent.fs["/opt/sampleapp/sampleapp"]
    assert (node.type, node.mode, node.gid) == ("dir", 0o750, 998)
    assert vm.agent.fs["/opt/sampleapp/sampleapp/app.py"].data == b"print('ok')\n"
    argvs = ctx.transport.argvs  # type: ignore[attr-defined]
    assert ("install", "-d", "-m", "750", "-o", "0", "-g", "998", "--", "/opt/sampleapp/sampleapp") in argvs
    # A path the baseline only holds as a placeholder is never invented.
    assert "/opt/sampleapp/big.bin" not in vm.agent.fs
    assert "cannot restore /opt/sampleapp/big.bin" in attempt.steps[0].detail


def test_a_symlink_where_a_file_belongs_is_moved_aside_not_written_through() -> None:
    vm = FakeVm(vm_agent({DEFAULTS: Node("symlink", link="/etc/shadow")}))
    execute_strategy(_strategy(DEFAULTS), context(vm, SAMPLEAPP, ISSUE, baseline=_baseline()))
    assert vm.agent.fs[DEFAULTS].type == "file"
    assert vm.agent.fs[f"/var/lib/vmrepair/quarantine/STAMP{DEFAULTS}"].link == "/etc/shadow"


def test_added_files_are_left_alone_unless_named() -> None:
    tree = {"/etc/systemd/system/sampleapp.service.d/local.conf": Node("file", b"[Service]\n"),
            DEFAULTS: Node("file", b"SAMPLEAPP_PORT=1\n"), "/opt/sampleapp/new.py": Node("file", b"x")}
    vm = FakeVm(vm_agent(tree))
    attempt = execute_strategy(_strategy(scopes=("component",), added=("unit_paths",)),
                               context(vm, SAMPLEAPP, ISSUE, baseline=_baseline()))
    assert "/etc/systemd/system/sampleapp.service.d/local.conf" not in vm.agent.fs
    assert "/opt/sampleapp/new.py" in vm.agent.fs
    assert "left /opt/sampleapp/new.py in place" in attempt.steps[0].detail


def test_files_where_the_baseline_watched_nothing_are_not_called_added() -> None:
    # A baseline recorded before /opt/sampleapp was watched (an older configuration) lacks its files
    # because it never looked, not because they were added: quarantining them would remove the
    # service's own files (nginx's enabled site, seen in bench/mttr.py's demo scenario).
    baseline = _baseline()
    baseline.roots = (DEFAULTS, UNIT_FILE)
    tree = {DEFAULTS: Node("file", b"SAMPLEAPP_PORT=1\n"), "/opt/sampleapp/new.py": Node("file", b"x")}
    vm = FakeVm(vm_agent(tree))
    attempt = execute_strategy(_strategy(scopes=("component",), added=("all",)),
                               context(vm, SAMPLEAPP, ISSUE, baseline=baseline))
    assert vm.agent.fs[DEFAULTS].data == b"SAMPLEAPP_PORT=8080\n"
    assert vm.agent.fs["/opt/sampleapp/new.py"].data == b"x"
    assert "left /opt/sampleapp/new.py in place: the baseline did not watch it" in attempt.steps[0].detail


def test_a_restore_of_paths_the_baseline_never_watched_is_not_applicable() -> None:
    baseline = FakeBaseline(roots=(DEFAULTS,), fs={DEFAULTS: Node("file", b"SAMPLEAPP_PORT=8080\n")})
    vm = FakeVm(vm_agent({"/opt/sampleapp/new.py": Node("file", b"x")}))
    with pytest.raises(StepNotApplicableError, match="the baseline did not watch /opt/sampleapp"):
        execute_strategy(_strategy("/opt/sampleapp", added=("all",)),
                         context(vm, SAMPLEAPP, ISSUE, baseline=baseline))
    assert vm.agent.fs["/opt/sampleapp/new.py"].data == b"x"
