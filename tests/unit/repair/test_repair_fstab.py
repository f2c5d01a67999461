"""fstab_entry: the pure edits (every other byte kept) and the step in an in-memory VM, with the shipped
fstab strategies end to end."""

from __future__ import annotations

import pytest

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.detect.fstab import probe_fstab
from orchestrator.detect.fstab_table import parse_fstab, takes_part_in_boot
from orchestrator.errors import AgentError, RepairStepError, StepNotApplicableError
from orchestrator.model import Component, Issue, IssueKind
from orchestrator.playbooks import model as m
from orchestrator.playbooks.loader import load_playbooks
from orchestrator.playbooks.placeholders import parse_template
from orchestrator.repair import execute_strategy
from orchestrator.steps.kinds.fstab_entry import DISABLED_PREFIX, FstabEntryStep, add_nofail, comment_out
from orchestrator.steps.registry import describe
from tests.unit.detect.fakes import target_agent
from tests.unit.fake_agent import FakeAgent
from tests.unit.repair.fakes import BOOT, FakeBaseline, FakeVm, Node, context, issue, vm_agent

FSTAB = "/etc/fstab"
UUID = "0f3c6b1e-1d5e-4b7a-9c55-2f4b2c1d9e01"
ROOT = b"/dev/vda / ext4 defaults,errors=remount-ro 0 1\n"
MISSING = f"UUID={UUID}\t/mnt/vmrepair-data\text4\tdefaults\t0\t2\n".encode()
NOFAIL = b",nofail,x-systemd.device-timeout=10s"
BOOT_ISSUE = issue("boot", IssueKind.BOOT_CONFIG, FSTAB)


def edit_all(data: bytes, action: str = "nofail") -> bytes:
    entries = parse_fstab(data)
    return add_nofail(data, entries) if action == "nofail" else comment_out(data, entries)


# -- the pure edits --------------------------------------------------------------------------------

def test_nofail_goes_right_after_the_options_and_nothing_else_moves() -> None:
    data = b"# static file system information\n" + ROOT + MISSING + b"\n# trailing comment\n"
    (_, entry) = parse_fstab(data)
    edited = add_nofail(data, [entry])
    assert edited == data.replace(b"\tdefaults\t0\t2", b"\tdefaults" + NOFAIL + b"\t0\t2")
    assert takes_part_in_boot(parse_fstab(edited)[1]) is False


def test_octal_escapes_and_tabs_of_the_edited_line_are_kept() -> None:
    line = rb"LABEL=my\040disk	/mnt/my\040data   ext4 	rw,noatime	0 2" + b"\n"
    assert edit_all(line) == line.replace(b"rw,noatime", b"rw,noatime" + NOFAIL)


def test_several_entries_are_edited_in_one_pass() -> None:
    data = b"/dev/vdy1 /a ext4 defaults 0 2\n" + ROOT + b"/dev/vdz1 /b xfs rw 0 0\n"
    entries = [e for e in parse_fstab(data) if e.target != "/"]
    assert add_nofail(data, entries) == (b"/dev/vdy1 /a ext4 defaults" + NOFAIL + b" 0 2\n" + ROOT
                                         + b"/dev/vdz1 /b xfs rw" + NOFAIL + b" 0 0\n")
    assert comment_out(data, entries) == (DISABLED_PREFIX + b"/dev/vdy1 /a ext4 defaults 0 2\n" + ROOT
                                          + DISABLED_PREFIX + b"/dev/vdz1 /b xfs rw 0 0\n")


def test_a_file_without_final_newline_keeps_it_that_way() -> None:
    data = ROOT + b"/dev/vdz1 /b ext4 defaults 0 2"
    assert edit_all(data).endswith(b"/dev/vdz1 /b ext4 defaults" + NOFAIL + b" 0 2")
    assert not edit_all(data).endswith(b"\n")


def test_crlf_line_endings_are_preserved() -> None:
    # Decision: a CRLF file is edited, not refused; each \r stays before its \n and never lands inside
    # the options field (libmount would read "defaults\r" as an option otherwise).
    data = b"/dev/vdz1 /b ext4 defaults\r\n/dev/vdy1 /c ext4 rw 0 2\r\n"
    assert edit_all(data) == (b"/dev/vdz1 /b ext4 defaults" + NOFAIL + b"\r\n"
                              b"/dev/vdy1 /c ext4 rw" + NOFAIL + b" 0 2\r\n")
    assert edit_all(data, "comment") == (DISABLED_PREFIX + b"/dev/vdz1 /b ext4 defaults\r\n"
                                         + DISABLED_PREFIX + b"/dev/vdy1 /c ext4 rw 0 2\r\n")


def test_an_entry_without_options_gets_an_options_field() -> None:
    assert edit_all(b"/dev/vdz1 /b ext4\n") == b"/dev/vdz1 /b ext4 nofail,x-systemd.device-timeout=10s\n"


def test_an_existing_device_timeout_is_kept() -> None:
    data = b"/dev/vdz1 /b ext4 x-systemd.device-timeout=3s 0 2\n"
    assert edit_all(data) == b"/dev/vdz1 /b ext4 x-systemd.device-timeout=3s,nofail 0 2\n"


def test_a_commented_line_keeps_its_text_after_the_marker() -> None:
    data = ROOT + b"  " + MISSING
    edited = comment_out(data, parse_fstab(data)[1:])
    assert edited == ROOT + b"# vmrepair: disabled, device missing:   " + MISSING
    assert [e.target for e in parse_fstab(edited)] == ["/"]


# -- the step in the VM ----------------------------------------------------------------------------

def vm_with(fstab: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> FakeVm:
    # No /dev tree: every device the fstab names is missing (the root entry is never looked up).
    return FakeVm(vm_agent({FSTAB: Node("file", fstab, mode, uid, gid)}))


def strategy(action: str = "nofail", path: str = "{subject}") -> m.Strategy:
    step = FstabEntryStep(action, parse_template(path))  # type: ignore[arg-type]
    return m.Strategy("fstab-test", "d", ("*",), 0.5, True, (step,), "fstab")


@pytest.mark.parametrize(("action", "expected"), [
    ("nofail", ROOT + MISSING.replace(b"\tdefaults\t", b"\tdefaults" + NOFAIL + b"\t")),
    ("comment", ROOT + DISABLED_PREFIX + MISSING),
])
def test_the_step_edits_only_the_blocking_entry_keeping_mode_and_owner(action: str,
                                                                       expected: bytes) -> None:
    vm = vm_with(ROOT + MISSING, mode=0o640, uid=0, gid=4)
    attempt = execute_strategy(strategy(action), context(vm, BOOT, BOOT_ISSUE))
    node = vm.agent.fs[FSTAB]
    assert node.data == expected
    assert (node.mode, node.uid, node.gid) == (0o640, 0, 4)
    (step,) = attempt.steps
    done = "made optional (nofail)" if action == "nofail" else "commented out"
    assert step.detail.startswith(f"{done} 1 entry of /etc/fstab: /mnt/vmrepair-data; ")
    assert f"/etc/fstab line 2 (/mnt/vmrepair-data): {done}; /dev/disk/by-uuid/{UUID} does not exist" \
        in step.detail
    # Carried to the target by the package's diff of /etc/fstab: nothing to replay.
    assert attempt.replay_ops == []
    # The same probe that found the issue now passes in the VM.
    assert probe_fstab(vm.agent, BOOT, FSTAB).ok


def test_the_write_expects_the_content_that_was_read() -> None:
    class ChangingAgent(FakeAgent):
        def read_file(self, path: str, *, max_bytes: int) -> bytes:
            data = super().read_file(path, max_bytes=max_bytes)
            self.fs[path].data += b"# someone else's edit\n"
            return data

    agent = ChangingAgent({FSTAB: Node("file", ROOT + MISSING)})
    with pytest.raises(RepairStepError, match=r"step 1 \(fstab_entry\): /etc/fstab changed since capture"):
        execute_strategy(strategy(), context(FakeVm(agent), BOOT, BOOT_ISSUE))
    assert agent.fs[FSTAB].data == ROOT + MISSING + b"# someone else's edit\n"


def test_missing_swap_is_made_optional_too() -> None:
    vm = vm_with(ROOT + b"UUID=dead-beef none swap sw 0 0\n")
    execute_strategy(strategy(), context(vm, BOOT, BOOT_ISSUE))
    assert vm.agent.fs[FSTAB].data == ROOT + b"UUID=dead-beef none swap sw" + NOFAIL + b" 0 0\n"


def test_entries_whose_device_exists_are_left_alone() -> None:
    data = ROOT + f"UUID={UUID} /ok ext4 defaults 0 2\n".encode() + b"/dev/vdz1 /gone ext4 defaults 0 2\n"
    vm = vm_with(data)
    vm.agent.symlink(f"/dev/disk/by-uuid/{UUID}", "../../vdb1")
    execute_strategy(strategy(), context(vm, BOOT, BOOT_ISSUE))
    assert vm.agent.fs[FSTAB].data == data.replace(b"/gone ext4 defaults", b"/gone ext4 defaults" + NOFAIL)


def test_nothing_blocking_is_not_applicable() -> None:
    vm = vm_with(ROOT + b"/dev/vdz1 /b ext4 defaults,nofail 0 2\n")
    with pytest.raises(StepNotApplicableError) as info:
        execute_strategy(strategy(), context(vm, BOOT, BOOT_ISSUE))
    assert info.value.message == ("fstab-test: step 1 (fstab_entry): no entry of /etc/fstab names a missing "
                                  "device: nothing would stop the boot")
    assert ("write_file", FSTAB) not in vm.agent.calls


def test_a_missing_file_is_not_applicable() -> None:
    with pytest.raises(StepNotApplicableError, match=r"fstab_entry\): /etc/fstab does not exist$"):
        execute_strategy(strategy(), context(FakeVm(vm_agent()), BOOT, BOOT_ISSUE))


@pytest.mark.parametrize(("path", "component", "expected"), [
    ("/etc/passwd", BOOT, "refusing '/etc/passwd': not an fstab file of boot (/etc/fstab)"),
    ("/etc/../etc/fstab.d/x", BOOT,
     "refusing '/etc/../etc/fstab.d/x': not an fstab file of boot (/etc/fstab)"),
    ("relative/fstab", BOOT, "refusing 'relative/fstab': not an fstab file of boot (/etc/fstab)"),
    ("/etc/fstab", Component("nginx", config_paths=("/etc/nginx",)),
     "refusing '/etc/fstab': not an fstab file of nginx (it has none)"),
])
def test_other_paths_are_refused(path: str, component: Component, expected: str) -> None:
    vm = vm_with(ROOT + MISSING)
    vm.agent.file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(RepairStepError) as info:
        execute_strategy(strategy(path=path), context(vm, component, BOOT_ISSUE))
    assert info.value.message == f"fstab-test: step 1 (fstab_entry): {expected}"
    assert not any(name == "write_file" for name, _ in vm.agent.calls)


def test_a_normalised_spelling_of_the_fstab_is_accepted() -> None:
    vm = vm_with(ROOT + MISSING)
    execute_strategy(strategy(path="/etc//./fstab"), context(vm, BOOT, BOOT_ISSUE))
    assert NOFAIL in vm.agent.fs[FSTAB].data


def test_a_symlinked_fstab_is_never_written_through() -> None:
    agent = vm_agent({"/etc/fstab.real": Node("file", ROOT + MISSING)})
    agent.symlink(FSTAB, "/etc/fstab.real")
    with pytest.raises(RepairStepError, match=r"/etc/fstab is a symlink, not a regular file; refusing to"):
        execute_strategy(strategy(), context(FakeVm(agent), BOOT, BOOT_ISSUE))
    assert agent.fs["/etc/fstab.real"].data == ROOT + MISSING


def test_an_agent_failure_fails_the_attempt() -> None:
    class BrokenAgent(FakeAgent):
        def read_file(self, path: str, *, max_bytes: int) -> bytes:
            raise AgentError("vm: agent read_file: answer is not JSON", host="vm")

    with pytest.raises(RepairStepError, match=r"step 1 \(fstab_entry\): vm: agent read_file: answer is not"):
        execute_strategy(strategy(), context(FakeVm(BrokenAgent({FSTAB: Node("file", MISSING)})), BOOT,
                                             BOOT_ISSUE))


def test_describe_names_the_action_and_the_file() -> None:
    assert describe(strategy("nofail").steps[0]) == ("add nofail to the entries of {subject} whose device "
                                                     "is missing")
    assert describe(strategy("comment", FSTAB).steps[0]) == ("comment out the entries of /etc/fstab whose "
                                                             "device is missing")


# -- the shipped strategies ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> dict[str, m.Strategy]:
    return {s.name: s for p in load_playbooks(PROJECT_ROOT / "playbooks") for s in p.strategies
            if p.name == "fstab"}


@pytest.mark.parametrize("name", ["fstab-add-nofail", "fstab-disable-entry"])
def test_shipped_edit_strategies_fix_the_entry_and_reload_systemd(shipped: dict[str, m.Strategy],
                                                                  name: str) -> None:
    vm = vm_with(ROOT + MISSING)
    ctx = context(vm, BOOT, BOOT_ISSUE)
    attempt = execute_strategy(shipped[name], ctx)
    assert [s.status for s in attempt.steps] == ["ok", "ok"]
    assert ("systemctl", "daemon-reload") in ctx.transport.argvs  # type: ignore[attr-defined]
    assert attempt.replay_ops == [{"op": "daemon_reload"}]
    assert probe_fstab(vm.agent, BOOT, FSTAB).ok


def test_shipped_restore_strategy_puts_the_baseline_back(shipped: dict[str, m.Strategy]) -> None:
    vm = vm_with(ROOT + MISSING)
    baseline = FakeBaseline({"/etc": Node("dir", mode=0o755), FSTAB: Node("file", ROOT, 0o644)})
    attempt = execute_strategy(shipped["fstab-restore-baseline"],
                               context(vm, BOOT, BOOT_ISSUE, baseline=baseline))
    assert (vm.agent.fs[FSTAB].data, vm.agent.fs[FSTAB].mode) == (ROOT, 0o644)
    assert attempt.replay_ops == [{"op": "daemon_reload"}]
    assert probe_fstab(vm.agent, BOOT, FSTAB).ok


def test_shipped_restore_strategy_is_skipped_without_a_baseline(shipped: dict[str, m.Strategy]) -> None:
    vm = vm_with(ROOT + MISSING)
    with pytest.raises(StepNotApplicableError) as info:
        execute_strategy(shipped["fstab-restore-baseline"], context(vm, BOOT, BOOT_ISSUE))
    assert info.value.message == ("fstab-restore-baseline: step 1 (restore_baseline) needs the target's "
                                  "baseline, and it has none")
    assert vm.agent.fs[FSTAB].data == ROOT + MISSING


def test_shipped_restore_strategy_is_skipped_when_the_baseline_has_no_fstab(
        shipped: dict[str, m.Strategy]) -> None:
    # A baseline recorded before the boot component was watched.
    vm = vm_with(ROOT + MISSING)
    baseline = FakeBaseline({"/etc/nginx": Node("dir", mode=0o755)})
    with pytest.raises(StepNotApplicableError, match="/etc/fstab already match the baseline"):
        execute_strategy(shipped["fstab-restore-baseline"], context(vm, BOOT, BOOT_ISSUE, baseline=baseline))
    assert vm.agent.fs[FSTAB].data == ROOT + MISSING


# -- only what the target reported ----------------------------------------------------------------

def target_issue(data: bytes, existing_on_target: set[str]) -> Issue:
    """The issue the probe raises on a target whose devices are ``existing_on_target``."""
    target = target_agent(files={FSTAB: data}, existing=existing_on_target)
    return Issue.from_result(probe_fstab(target, BOOT, FSTAB))


def test_entries_healthy_on_the_target_are_not_edited_in_the_vm() -> None:
    # The target has its /home disk; the VM (the template's disks) has neither device.
    home = f"UUID={UUID} /home ext4 defaults 0 2\n".encode()
    data = ROOT + home + b"/dev/vdz1 /gone ext4 defaults 0 2\n"
    the_issue = target_issue(data, {f"/dev/disk/by-uuid/{UUID}"})
    assert the_issue.evidence["blocking"].startswith("line 3: ")
    vm = vm_with(data)
    attempt = execute_strategy(strategy(), context(vm, BOOT, the_issue))
    assert vm.agent.fs[FSTAB].data == ROOT + home + b"/dev/vdz1 /gone ext4 defaults" + NOFAIL + b" 0 2\n"
    assert ("left line(s) 2 of /etc/fstab alone: their device is missing in the VM but was found on the "
            "target") in attempt.steps[0].detail
    # The VM still sees /home as missing: validation fails, and nothing reaches the target.
    assert not probe_fstab(vm.agent, BOOT, FSTAB).ok


def test_lines_the_target_reported_that_are_fine_in_the_vm_are_not_applicable() -> None:
    # The target lacks /dev/vdb (line 2) but has its /home disk (line 3); the VM is the other way round.
    home = f"UUID={UUID} /home ext4 defaults 0 2\n".encode()
    data = ROOT + b"/dev/vdb /srv ext4 defaults 0 2\n" + home
    the_issue = target_issue(data, {f"/dev/disk/by-uuid/{UUID}"})
    vm = vm_with(data)
    vm.agent.file("/dev/vdb", b"")  # stands in for the VM's second disk
    with pytest.raises(StepNotApplicableError) as info:
        execute_strategy(strategy(), context(vm, BOOT, the_issue))
    assert info.value.message == ("fstab-test: step 1 (fstab_entry): the line(s) of /etc/fstab the target "
                                  "reported are not broken here")
    assert vm.agent.fs[FSTAB].data == data
