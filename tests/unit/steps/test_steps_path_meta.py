"""make_dir and set_meta on a fake VM: one path's own mode and owner, inside the component's paths
(or the watched system paths for the host), never through a symlink, never recursive."""

from __future__ import annotations

import pytest

from orchestrator.errors import RepairStepError, StepNotApplicableError
from orchestrator.model import Component, IssueKind
from orchestrator.playbooks.step_schema import StepFile
from orchestrator.repair.generate.proposal import to_steps
from orchestrator.steps.io import StepIO
from orchestrator.steps.registry import Step, run_step
from tests.unit.fake_agent import Node
from tests.unit.repair.fakes import FakeVm, context, issue, vm_agent

APP = Component(name="app", units=("app.service",), config_paths=("/etc/app",),
                writable_paths=("/var/lib/app",), user="app", group="app")
HOST = Component(name="host")


def _step(raw: dict[str, object]) -> Step:
    steps = to_steps([raw])
    assert steps is not None
    return steps[0]


def _run(vm: FakeVm, raw: dict[str, object], component: Component = APP) -> str:
    ctx = context(vm, component, issue(component.name, IssueKind.PATH_MISSING, "/var/lib/app"))
    return run_step(_step(raw), ctx, StepIO(ctx, "s", "step 1"))


def test_make_dir_creates_the_directory_with_its_mode_and_owner() -> None:
    vm = FakeVm(vm_agent(dirs=["/var/lib"]))
    detail = _run(vm, {"make_dir": {"path": "/var/lib/app", "mode": "0750", "owner": "app", "group": "app"}})
    node = vm.agent.fs["/var/lib/app"]
    assert (node.type, node.mode, node.uid, node.gid) == ("dir", 0o750, 101, 101)
    assert detail == "created /var/lib/app (0750 app:app)"
    with pytest.raises(StepNotApplicableError, match="already exists"):
        _run(vm, {"make_dir": {"path": "/var/lib/app"}})


def test_make_dir_refuses_what_is_in_the_way_and_paths_outside_the_component() -> None:
    vm = FakeVm(vm_agent({"/var/lib/app": Node("file", b"data")}))
    with pytest.raises(RepairStepError, match="is a file, not a directory"):
        _run(vm, {"make_dir": {"path": "/var/lib/app"}})
    with pytest.raises(RepairStepError, match="not below the app paths"):
        _run(vm, {"make_dir": {"path": "/var/lib/other"}})


def test_set_meta_changes_only_what_differs_and_never_through_a_symlink() -> None:
    vm = FakeVm(vm_agent({"/etc/app/app.conf": Node("file", b"x", mode=0o666)},
                         symlinks={"/etc/app/link": "/etc/shadow"}))
    detail = _run(vm, {"set_meta": {"path": "/etc/app/app.conf", "mode": "0640", "group": "app"}})
    node = vm.agent.fs["/etc/app/app.conf"]
    assert (node.mode, node.uid, node.gid) == (0o640, 0, 101)
    assert detail == "/etc/app/app.conf: mode 0666 -> 0640, owner root:root -> :app"
    with pytest.raises(StepNotApplicableError, match="already has mode 0640"):
        _run(vm, {"set_meta": {"path": "/etc/app/app.conf", "mode": "0640"}})
    with pytest.raises(RepairStepError, match="a symlink"):
        _run(vm, {"set_meta": {"path": "/etc/app/link", "mode": "0600"}})
    with pytest.raises(StepNotApplicableError, match="does not exist"):
        _run(vm, {"set_meta": {"path": "/etc/app/gone", "mode": "0600"}})


def test_the_host_may_touch_its_system_paths_and_nothing_else() -> None:
    vm = FakeVm(vm_agent({"/tmp": Node("dir", mode=0o755)}))
    _run(vm, {"set_meta": {"path": "/tmp", "mode": "1777", "owner": "root", "group": "root"}}, HOST)
    assert vm.agent.fs["/tmp"].mode == 0o1777
    with pytest.raises(RepairStepError, match="not one of the system paths"):
        _run(vm, {"set_meta": {"path": "/tmp/x", "mode": "0600"}}, HOST)


@pytest.mark.parametrize("raw", [
    {"set_meta": {"path": "/etc/app/x"}},
    {"set_meta": {"path": "/etc/app/x", "mode": "999"}},
    {"make_dir": {"path": "/var/lib/app", "owner": "-rf"}},
    {"make_dir": {"path": "relative"}},
])
def test_invalid_specs_are_refused_by_the_schema(raw: dict[str, object]) -> None:
    from pydantic import TypeAdapter, ValidationError
    with pytest.raises(ValidationError):
        TypeAdapter(StepFile).validate_python(raw)


@pytest.mark.parametrize("component", [HOST, Component(name="host", writable_paths=("/etc/shadow",))])
def test_set_meta_gives_a_system_file_its_mode_without_touching_its_content(component: Component) -> None:
    vm = FakeVm(vm_agent({"/etc/shadow": Node("file", b"root:$y$hash:::\n", mode=0o644, gid=42)}))
    detail = _run(vm, {"set_meta": {"path": "/etc/shadow", "mode": "0640", "owner": "root", "group": "42"}},
                  component)
    node = vm.agent.fs["/etc/shadow"]
    assert (node.type, node.mode, node.uid, node.gid) == ("file", 0o640, 0, 42)
    assert node.data == b"root:$y$hash:::\n"
    assert detail == "/etc/shadow: mode 0644 -> 0640"


def test_set_meta_gives_sudoers_back_to_root_with_mode_0440() -> None:
    vm = FakeVm(vm_agent({"/etc/sudoers": Node("file", b"root ALL=(ALL:ALL) ALL\n", mode=0o666, uid=101)}))
    spec = {"path": "/etc/sudoers", "mode": "0440", "owner": "root", "group": "root"}
    detail = _run(vm, {"set_meta": spec}, Component(name="host", writable_paths=("/etc/sudoers",)))
    node = vm.agent.fs["/etc/sudoers"]
    assert (node.mode, node.uid, node.gid, node.data) == (0o440, 0, 0, b"root ALL=(ALL:ALL) ALL\n")
    assert detail == "/etc/sudoers: mode 0666 -> 0440, owner app:root -> root:root"
