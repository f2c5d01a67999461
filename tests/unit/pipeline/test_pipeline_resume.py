"""Runs whose process died are closed as interrupted at the next start (recover_on_start), on libvirt's
test driver: the stage named, their troubleshooting VM destroyed, a report, resumed_from on the next run."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.app import App
from orchestrator.apply.recovery import recover_on_start
from orchestrator.cli import main as cli_main
from orchestrator.components.config import WatchConfig
from orchestrator.config.settings import Settings, VmSettings
from orchestrator.errors import HypervisorError
from orchestrator.hypervisor import instance as inst
from orchestrator.hypervisor.connection import LibvirtConnection
from orchestrator.hypervisor.vm import VmManager
from orchestrator.imaging.store import BuiltImage
from orchestrator.model import Component, SessionStatus
from orchestrator.pipeline.resume import STALE_AFTER_S
from orchestrator.pipeline.run import RunOptions, run_repair
from orchestrator.session.evidence import Stage
from orchestrator.session.owner import Owner, this_process
from orchestrator.session.store import Session, StageRecord, new_session
from orchestrator.timestamps import now_timestamp
from orchestrator.transport.base import Transport
from orchestrator.transport.fake import FakeTransport
from tests.unit.pipeline.fakes import Script

APP = Component("app", units=(), config_paths=("/etc/app",), config_test=("app", "-t"))


def _qemu_img(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    if argv[:2] == ("qemu-img", "create"):
        Path(argv[-1]).write_bytes(b"QFI\xfb overlay")
        return 0, b"", b""
    return 127, b"", b"unexpected command\n"


def _ssh(record: inst.InstanceRecord, connect_timeout: float) -> Transport:
    return FakeTransport(lambda argv, stdin: (0, b"", b""), host=f"root@127.0.0.1:{record.ssh_port}")


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Iterator[App]:
    app = App(make_settings(vm=VmSettings(accel="tcg", boot_timeout_s=5),
                            watch=WatchConfig((APP,), mounts=())))
    yield app
    app.close()


@pytest.fixture
def vms(app: App, libvirt_conn: LibvirtConnection,
        make_built_image: Callable[..., BuiltImage]) -> VmManager:
    make_built_image(app.settings.image_store)
    return VmManager(app.settings, libvirt_conn, FakeTransport(_qemu_img, host="local"), _ssh)


def _killed_in(app: App, target: str, stage: str, owner: Owner | None) -> Session:
    """A session as a run killed inside ``stage`` leaves it (the stage entered, never left)."""
    session = new_session(app.settings.sessions_dir, target)
    with session.stage(Stage.CONNECT):
        pass
    # What Session.stage() has written when the process dies inside the stage (its `finally` never runs).
    session.timeline.append(StageRecord(stage, now_timestamp()))
    session.event(stage, "started")
    session.write_json("timeline", [vars(r) for r in session.timeline])
    meta = json.loads((session.dir / "session.json").read_text())
    if owner is None:
        meta.pop("owner")
    else:
        meta["owner"] = owner.as_dict()
    (session.dir / "session.json").write_text(json.dumps(meta))
    return session


def _vm_of(vms: VmManager, name: str, pid: int) -> None:
    vms.up(name, ephemeral=True)
    directory = vms.vm_dir(name)
    dataclasses.replace(inst.InstanceRecord.load(directory), owner_pid=pid).save(directory)


def _meta(session: Session) -> dict[str, Any]:
    data = json.loads((session.dir / "session.json").read_text())
    assert isinstance(data, dict)
    return data


def _audited(app: App) -> list[dict[str, Any]]:
    path = app.settings.audit.path
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in lines if e["details"].get("action") == "session_interrupted"]


def test_a_run_whose_process_died_is_closed_and_its_vm_destroyed(app: App, vms: VmManager,
                                                                 dead_pid: int) -> None:
    session = _killed_in(app, "vm:web", Stage.REPRODUCE, Owner(dead_pid, this_process().boot_id))
    _vm_of(vms, "trb-dead", dead_pid)
    _vm_of(vms, "trb-live", os.getpid())     # another run's, still going
    vms.up("kept")                           # a user's VM: never reaped
    (session.dir / ".session.json.abcd1234.tmp").write_bytes(b"{")   # a write the kill cut off

    report = recover_on_start(app, vms=lambda: vms)

    assert [(r["session"], r["stage"], r["vms_destroyed"]) for r in report.interrupted] == [
        (session.id, "reproduce", ["trb-dead"])]
    meta = _meta(session)
    assert (meta["status"], meta["exit_code"]) == ("interrupted", 21)
    assert meta["summary"].startswith(f"interrupted in stage reproduce: its process (pid {dead_pid}) is gone")
    assert "trb-dead destroyed" in meta["summary"]
    assert [vm.name for vm in vms.list()] == ["kept", "trb-live"]
    timeline = json.loads((session.dir / "timeline.json").read_text())
    assert [(e["name"], e["status"]) for e in timeline] == [("connect", "ok"), ("reproduce", "interrupted")]
    assert not (session.dir / ".session.json.abcd1234.tmp").exists()
    events = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "interrupted" and events[-1]["vms_destroyed"] == ["trb-dead"]
    assert [e["status"] for e in _audited(app)] == ["interrupted"]
    text = (session.dir / "report.md").read_text()
    assert "**Status: INTERRUPTED** — interrupted in stage reproduce" in text
    assert "the next `vmrepair run` (or daemon check) starts afresh from detection" in text


def test_a_run_of_a_previous_boot_is_dead_even_if_its_pid_runs_now(app: App, vms: VmManager) -> None:
    me = this_process()
    session = _killed_in(app, "local", Stage.SANDBOX, dataclasses.replace(me, boot_id="0" * 8 + "-old-boot"))
    _vm_of(vms, "trb-old", me.pid)   # after the reboot its owner pid is carried by a live process

    report = recover_on_start(app, vms=lambda: vms)

    assert [r["vms_destroyed"] for r in report.interrupted] == [["trb-old"]]
    assert "ran in a previous boot of this host" in _meta(session)["summary"]
    assert vms.list() == []


def test_a_reused_pid_does_not_keep_a_dead_run_open(app: App, vms: VmManager) -> None:
    me = this_process()
    session = _killed_in(app, "local", Stage.DETECT, dataclasses.replace(me, start_ticks=me.start_ticks + 1))
    recover_on_start(app, vms=lambda: vms)
    assert _meta(session)["status"] == "interrupted"


def test_a_run_whose_owner_is_alive_is_untouched(app: App, vms: VmManager) -> None:
    session = _killed_in(app, "local", Stage.SANDBOX, this_process())
    _vm_of(vms, "trb-mine", os.getpid())
    before = (session.dir / "session.json").read_bytes()

    report = recover_on_start(app, vms=lambda: vms)

    assert report.interrupted == []
    assert (session.dir / "session.json").read_bytes() == before
    assert not (session.dir / "report.md").exists()
    assert [vm.name for vm in vms.list()] == ["trb-mine"]


def test_closing_is_idempotent(app: App, vms: VmManager, dead_pid: int) -> None:
    session = _killed_in(app, "local", Stage.CAPTURE, Owner(dead_pid, this_process().boot_id))
    assert len(recover_on_start(app, vms=lambda: vms).interrupted) == 1
    meta, evidence = _meta(session), (session.dir / "evidence.jsonl").read_bytes()

    second = recover_on_start(app, vms=lambda: vms)

    assert second.interrupted == [] and second.is_clean
    assert _meta(session) == meta
    assert (session.dir / "evidence.jsonl").read_bytes() == evidence
    assert len(_audited(app)) == 1


def test_a_session_without_an_owner_record_is_closed_and_orphans_reaped(app: App, vms: VmManager,
                                                                        dead_pid: int) -> None:
    """Written by a vmrepair before owners were recorded: under the lock no run of it can be alive."""
    session = _killed_in(app, "local", Stage.SANDBOX, None)
    _vm_of(vms, "trb-orphan", dead_pid)
    report = recover_on_start(app, vms=lambda: vms)
    assert [r["vms_destroyed"] for r in report.interrupted] == [["trb-orphan"]]
    assert "its owner was not recorded" in _meta(session)["summary"]


def test_a_hypervisor_that_cannot_be_reached_does_not_keep_the_run_open(app: App, dead_pid: int) -> None:
    session = _killed_in(app, "local", Stage.SANDBOX, Owner(dead_pid, ""))

    def unreachable() -> VmManager:
        raise HypervisorError("cannot connect to qemu:///system")

    report = recover_on_start(app, vms=unreachable)

    assert report.interrupted[0]["problems"] == [
        "troubleshooting VMs not destroyed: cannot connect to qemu:///system (run `vmrepair vm reap`)"]
    meta = _meta(session)
    assert meta["status"] == "interrupted" and "run `vmrepair vm reap`" in meta["summary"]


def test_no_dead_run_never_asks_for_the_hypervisor(app: App) -> None:
    def forbidden() -> VmManager:
        raise AssertionError("the hypervisor was asked for with nothing to close")

    new_session(app.settings.sessions_dir, "local").finish(SessionStatus.HEALTHY, "fine")
    assert recover_on_start(app, vms=forbidden).is_clean


def test_stale_temp_files_and_package_saves_in_the_state_dir_are_removed(app: App) -> None:
    state = app.settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    old_tmp, new_tmp = state / ".state.db.x1y2z3w4.tmp", state / ".outcomes.json.a1b2c3d4.tmp"
    cut_save, saved = state / "packages" / "p-cut", state / "packages" / "p-done"
    for path in (cut_save, saved):
        path.mkdir(parents=True)
    (saved / "package.json").write_text("{}")
    old_tmp.write_bytes(b"x")
    new_tmp.write_bytes(b"x")
    long_ago = time.time() - STALE_AFTER_S - 60
    for path in (old_tmp, cut_save, saved):
        os.utime(path, (long_ago, long_ago))

    recover_on_start(app)

    assert not old_tmp.exists() and not cut_save.exists()
    assert new_tmp.exists()    # may be another command's write in progress
    assert saved.exists()


def test_the_next_run_on_the_target_records_resumed_from(app: App, vms: VmManager, tmp_path: Path,
                                                         dead_pid: int) -> None:
    app.local = FakeTransport(lambda argv, stdin: (0, b"ok\n", b""))  # type: ignore[misc]  # healthy
    other = _killed_in(app, "vm:other", Stage.SANDBOX, Owner(dead_pid, ""))
    killed = _killed_in(app, "local", Stage.SANDBOX, Owner(dead_pid, ""))
    recover_on_start(app, vms=lambda: vms)
    script = Script(tmp_path)

    first = run_repair(app, "local", RunOptions(), sandbox=script.new_sandbox, stages=script.stages())
    second = run_repair(app, "local", RunOptions(), sandbox=script.new_sandbox, stages=script.stages())

    assert first.status is SessionStatus.HEALTHY
    assert _meta(first.session)["resumed_from"] == killed.id
    assert "resumed_from" not in _meta(second.session)   # its previous run finished
    assert _meta(other)["status"] == "interrupted"


@pytest.fixture
def cli_env(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the app's state directory (and an empty config)."""
    config = tmp_path / "config.yaml"
    config.write_text("")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(app.settings.state_dir))


@pytest.mark.usefixtures("cli_env")
def test_vmrepair_sessions_lists_the_run_as_interrupted(app: App, vms: VmManager, dead_pid: int,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    session = _killed_in(app, "local", Stage.APPLY, Owner(dead_pid, ""))
    recover_on_start(app, vms=lambda: vms)

    assert cli_main.main(["sessions", "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert [(r["id"], r["status"], r["exit_code"]) for r in rows] == [(session.id, "interrupted", 21)]


def test_a_vm_directory_the_killed_run_made_without_a_record_is_removed(app: App, vms: VmManager,
                                                                       dead_pid: int) -> None:
    """Killed between creating the VM's directory and writing its record (seen on a real VM): no record
    names its owner, but it was written while the dead run held the state lock."""
    old = vms.vm_dir("trb-older")            # an earlier crash's leftover: not this run's to judge
    old.mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    session = _killed_in(app, "vm:web", Stage.SANDBOX, Owner(dead_pid, this_process().boot_id))
    half = vms.vm_dir("trb-debian-12")
    half.mkdir(parents=True)
    (half / inst.OVERLAY).write_bytes(b"QFI\xfb overlay")

    report = recover_on_start(app, vms=lambda: vms)

    assert [(r["session"], r["vms_destroyed"]) for r in report.interrupted] == [
        (session.id, ["trb-debian-12"])]
    assert not half.exists()
    assert [vm.name for vm in vms.list()] == ["trb-older"]
