"""TroubleshootingVm.fill_disk_to and import_capture, without a VM.

The VM's transport and agent are normally opened lazily through ``App.vms`` (libvirt + SSH). These tests
set the private ``_transport`` / ``_agent`` slots to fakes instead, the same slots the lazy properties
fill, so no libvirt connection and no SSH session is ever made (``App(settings)`` alone opens nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.agent.api import DiskUsage, Manifest, Placeholder, UnpackResult
from orchestrator.app import App
from orchestrator.capture.snapshot import Capture
from orchestrator.config.settings import Settings
from orchestrator.errors import AgentError, BootError, CommandFailedError
from orchestrator.hypervisor.vm import UpResult
from orchestrator.model import Component
from orchestrator.sandbox.mirror import MANIFEST_LIMIT
from orchestrator.sandbox.vm import FILLER, TroubleshootingVm
from orchestrator.session.store import Session, new_session
from orchestrator.systemd.counter import read_back_argv
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import file_entry, usage

MIB = 1024 * 1024
REMOTE_DIR = "/run/vmrepair-agent"


@dataclass
class SandboxAgent:
    """The AgentApi methods TroubleshootingVm uses: disk_usage, push, unpack, manifest, remove_file (and
    ``remote_dir``)."""

    disk: DiskUsage = field(default_factory=usage)
    unpacked: UnpackResult = field(default_factory=lambda: UnpackResult(("/etc/nginx/nginx.conf",)))
    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    remote_dir: str = REMOTE_DIR

    def _call(self, name: str, arg: object) -> None:
        self.calls.append((name, arg))
        if name in self.errors:
            raise self.errors[name]

    def disk_usage(self, mount: str) -> DiskUsage:
        self._call("disk_usage", mount)
        return self.disk

    def push(self, local: Path, remote: str) -> str:
        self._call("push", (local, remote))
        return remote

    def unpack(self, remote_tar: str, placeholders: list[Placeholder], roots: list[str], *,
               manifest: Manifest | None = None) -> UnpackResult:
        self._call("unpack", (remote_tar, placeholders, roots, manifest))
        return self.unpacked

    #: What the VM holds in the captured roots after the unpack (the VM's manifest).
    in_vm: Manifest = field(default_factory=lambda: Manifest(()))
    removed: list[str] = field(default_factory=list)

    def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = ()) -> Manifest:
        return self.in_vm

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        self.removed.append(path)


MakeVm = Callable[..., tuple[TroubleshootingVm, SandboxAgent, FakeTransport]]


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return new_session(tmp_path / "sessions", "vm:patient")


@pytest.fixture
def make_vm(make_settings: Callable[..., Settings], session: Session) -> Iterator[MakeVm]:
    made: list[TroubleshootingVm] = []

    def factory(
        agent: SandboxAgent | None = None, transport: FakeTransport | None = None
    ) -> tuple[TroubleshootingVm, SandboxAgent, FakeTransport]:
        vm = TroubleshootingVm(App(make_settings()), session)
        made.append(vm)
        agent = agent or SandboxAgent()
        transport = transport or FakeTransport(host=vm.name)
        vm._agent = agent  # type: ignore[assignment]  # see the module docstring
        vm._transport = transport
        return vm, agent, transport

    yield factory
    for vm in made:
        vm._pool.shutdown(wait=True)  # never submitted to: no thread, no VM to destroy
        assert vm.app._conn is None


def events(session: Session, name: str) -> list[dict[str, object]]:
    path = session.dir / "evidence.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r["event"] == name]


# -- fill_disk_to ---------------------------------------------------------------------------------

def test_fills_to_the_targets_ratio_plus_a_margin(make_vm: MakeVm, session: Session) -> None:
    vm, _, transport = make_vm(SandboxAgent(disk=usage(50.0)))  # 5 GB used of 10 GB
    vm.fill_disk_to(95.0)
    need = 9_500_000_000 - 5_000_000_000 + 8 * MIB
    assert transport.argvs == [("fallocate", "-l", str(need), FILLER)]
    assert transport.calls[0].timeout == 120
    (event,) = events(session, "disk_filled")
    assert (event["filler_bytes"], event["to_pct"]) == (need, 95.0)


def test_ratio_is_of_used_plus_available_like_df(make_vm: MakeVm) -> None:
    # 2 GB reserved for root are neither used nor available: the ratio ignores them, as df does.
    disk = DiskUsage("/", 12_000_000_000, 5_000_000_000, 5_000_000_000, 50.0, 1000, 10, 1.0)
    vm, _, transport = make_vm(SandboxAgent(disk=disk))
    vm.fill_disk_to(95.0)
    assert transport.argvs[0][2] == str(9_500_000_000 - 5_000_000_000 + 8 * MIB)


def test_filler_never_exceeds_the_available_space(make_vm: MakeVm) -> None:
    disk = DiskUsage("/", 1_001_000, 1_000, 1_000_000, 0.1, 1000, 10, 1.0)
    vm, _, transport = make_vm(SandboxAgent(disk=disk))
    vm.fill_disk_to(99.9)
    assert transport.argvs == [("fallocate", "-l", "1000000", FILLER)]


@pytest.mark.parametrize("target_pct", [97.0, 96.5])
def test_a_disk_already_that_full_is_left_alone(
    make_vm: MakeVm, session: Session, target_pct: float
) -> None:
    vm, agent, transport = make_vm(SandboxAgent(disk=usage(97.0)))
    vm.fill_disk_to(target_pct)
    assert agent.calls == [("disk_usage", "/")]
    assert transport.calls == []
    assert events(session, "disk_filled") == []


def test_a_failed_fallocate_is_reported(make_vm: MakeVm) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        return 1, b"", b"fallocate: fallocate failed: No space left on device\n"

    vm, _, _ = make_vm(SandboxAgent(disk=usage(50.0)), FakeTransport(handler, host="trb"))
    with pytest.raises(CommandFailedError, match="No space left on device"):
        vm.fill_disk_to(95.0)


# -- import_capture -------------------------------------------------------------------------------

NGINX = Component("nginx", units=("nginx.service",), config_paths=("/etc/nginx",))
APP = Component("sampleapp", units=("sampleapp.service", "nginx.service"), data_paths=("/var/lib/sampleapp",))


def captured(tmp_path: Path) -> Capture:
    tar = tmp_path / "files.tar"
    tar.write_bytes(b"tar")
    placeholder = Placeholder("/var/lib/sampleapp/big.db", 10**9, "b" * 64)
    manifest = Manifest((file_entry("/etc/nginx/nginx.conf"),))
    return Capture(tar, ("/etc/nginx", "/var/lib/sampleapp"), manifest, (placeholder,))


def test_import_pushes_unpacks_and_restarts_each_unit_once(
    make_vm: MakeVm, session: Session, tmp_path: Path
) -> None:
    capture = captured(tmp_path)
    vm, agent, transport = make_vm()
    report = vm.import_capture(capture, [NGINX, APP])
    assert agent.calls == [
        ("push", (capture.tar, f"{REMOTE_DIR}/capture.tar")),
        ("unpack", (f"{REMOTE_DIR}/capture.tar", list(capture.placeholders), list(capture.paths),
                    capture.manifest)),
    ]
    assert transport.argvs == [  # no unit file came with the capture: no daemon-reload
        ("systemctl", "reset-failed", "--", "nginx.service"), ("systemctl", "restart", "--", "nginx.service"),
        tuple(read_back_argv("nginx.service")),
        ("systemctl", "reset-failed", "--", "sampleapp.service"),
        ("systemctl", "restart", "--", "sampleapp.service"),
        tuple(read_back_argv("sampleapp.service")),
    ]
    assert report.is_complete and report.error is None
    (event,) = events(session, "imported")
    assert (event["written"], event["placeholders"], event["failed"]) == (1, 0, [])


def test_a_capture_of_meta_paths_only_unpacks_nothing(make_vm: MakeVm, tmp_path: Path) -> None:
    # A system directory's mode (/tmp 0755): the capture holds /tmp's own entry and no file.
    host = Component("host", writable_paths=("/tmp",))
    capture = replace(Capture(tmp_path / "files.tar", (), Manifest(()), ()), meta_paths=("/tmp",))
    vm, agent, _ = make_vm()
    report = vm.import_capture(capture, [host])
    assert not any(call[0] in ("push", "unpack") for call in agent.calls)
    assert report.is_complete and report.error is None


@pytest.mark.parametrize(("written", "reloads"), [
    ("/etc/systemd/system/nginx.service.d/override.conf", True),
    ("/lib/systemd/system/nginx.service", True),
    ("/etc/systemd/system.conf", False),      # the manager's config: not a unit (needs a re-exec)
    ("/etc/systemd/systemx/a.service", False),
])
def test_systemd_reloads_only_when_a_unit_file_or_drop_in_was_imported(
    make_vm: MakeVm, tmp_path: Path, written: str, reloads: bool
) -> None:
    vm, _, transport = make_vm(SandboxAgent(unpacked=UnpackResult((written,))))
    vm.import_capture(captured(tmp_path), [NGINX])
    assert (("systemctl", "daemon-reload") in transport.argvs) is reloads
    assert transport.argvs[-2:] == [("systemctl", "restart", "--", "nginx.service"),
                                    tuple(read_back_argv("nginx.service"))]


def test_a_partial_import_is_not_complete_but_services_still_restart(
    make_vm: MakeVm, session: Session, tmp_path: Path
) -> None:
    partial = UnpackResult(("/etc/nginx/nginx.conf",),
                           failed=(("/etc/nginx/ssl/key.pem", "permission denied"),))
    vm, _, transport = make_vm(SandboxAgent(unpacked=partial))
    report = vm.import_capture(captured(tmp_path), [NGINX])
    assert report.is_complete is False and report.unpack == partial
    assert ("systemctl", "restart", "--", "nginx.service") in transport.argvs
    assert events(session, "imported")[0]["failed"] == [["/etc/nginx/ssl/key.pem", "permission denied"]]


@pytest.mark.parametrize("failing", ["push", "unpack"])
def test_a_failed_import_is_reported_not_raised(
    make_vm: MakeVm, session: Session, tmp_path: Path, failing: str
) -> None:
    refused = AgentError("trb: unpack refused: member outside roots", host="trb")
    agent = SandboxAgent(errors={failing: refused})
    vm, _, transport = make_vm(agent)
    report = vm.import_capture(captured(tmp_path), [NGINX])
    assert report.is_complete is False
    assert (report.unpack, report.error) == (None, "trb: unpack refused: member outside roots")
    assert transport.calls == []  # nothing restarted on a half-imported VM
    assert events(session, "import_failed")[0]["error"] == "trb: unpack refused: member outside roots"


# -- unit states ----------------------------------------------------------------------------------

def with_units(capture: Capture, **states: str) -> Capture:
    return replace(capture, units={u.replace("_", "."): {"UnitFileState": s}
                                               for u, s in states.items()})


def test_a_unit_masked_on_the_target_is_masked_in_the_vm_before_its_restart(
    make_vm: MakeVm, session: Session, tmp_path: Path
) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show"):
            return 0, b"UnitFileState=enabled\n", b""
        return 0, b"", b""

    vm, _, transport = make_vm(transport=FakeTransport(handler, host="trb"))
    report = vm.import_capture(with_units(captured(tmp_path), nginx_service="masked"), [NGINX])
    argvs = transport.argvs
    mask = argvs.index(("systemctl", "mask", "--", "nginx.service"))
    # Masked and not running on the target (no ActiveState=active captured): stopped, never restarted.
    assert mask < argvs.index(("systemctl", "stop", "--", "nginx.service"))
    assert ("systemctl", "restart", "--", "nginx.service") not in argvs
    assert report.unit_states == ("mask nginx.service: done",
                                  "stop nginx.service: the target does not run it")
    (event,) = events(session, "unit_states")
    assert event["changed"] == ["mask nginx.service: done"]


def test_a_unit_already_in_the_targets_state_is_left_alone(make_vm: MakeVm, tmp_path: Path) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show"):
            return 0, b"UnitFileState=enabled\n\nUnitFileState=disabled\n", b""
        return 0, b"", b""

    vm, _, transport = make_vm(transport=FakeTransport(handler, host="trb"))
    report = vm.import_capture(with_units(captured(tmp_path), nginx_service="enabled",
                                          sampleapp_service="static"), [NGINX, APP])
    assert report.unit_states == ()
    shows = [a for a in transport.argvs if a[:2] == ("systemctl", "show")]
    assert shows == [("systemctl", "show", "--property=UnitFileState", "--", "nginx.service"),
                     *(tuple(read_back_argv(u)) for u in ("nginx.service", "sampleapp.service"))]
    assert not any(a[1] in {"mask", "enable", "disable"} for a in transport.argvs)


def test_a_unit_the_target_stopped_is_stopped_in_the_vm_and_a_failed_one_restarted(
    make_vm: MakeVm, tmp_path: Path
) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show"):
            return 0, b"UnitFileState=enabled\n", b""
        return 0, b"", b""

    vm, _, transport = make_vm(transport=FakeTransport(handler, host="trb"))
    capture = replace(captured(tmp_path), units={
        "nginx.service": {"UnitFileState": "disabled", "ActiveState": "inactive"},   # disable --now
        "sampleapp.service": {"UnitFileState": "enabled", "ActiveState": "failed"},
    })
    report = vm.import_capture(capture, [NGINX, APP])
    argvs = transport.argvs
    assert ("systemctl", "stop", "--", "nginx.service") in argvs
    assert ("systemctl", "restart", "--", "nginx.service") not in argvs
    assert ("systemctl", "restart", "--", "sampleapp.service") in argvs
    assert "stop nginx.service: the target does not run it" in report.unit_states


def test_a_components_socket_is_stopped_like_the_target_and_never_restarted(
    make_vm: MakeVm, tmp_path: Path
) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:2] == ("systemctl", "show"):
            return 0, b"UnitFileState=enabled\n\nUnitFileState=enabled\n", b""
        return 0, b"", b""

    vm, _, transport = make_vm(transport=FakeTransport(handler, host="trb"))
    syslog = Component("rsyslog", units=("rsyslog.service",), sockets=("syslog.socket",))
    capture = replace(captured(tmp_path), units={
        "rsyslog.service": {"UnitFileState": "enabled", "ActiveState": "failed"},
        "syslog.socket": {"UnitFileState": "disabled", "ActiveState": "inactive"},
    })
    vm.import_capture(capture, [syslog])
    argvs = transport.argvs
    assert ("systemctl", "disable", "--", "syslog.socket") in argvs
    assert ("systemctl", "stop", "--", "syslog.socket") in argvs
    assert ("systemctl", "restart", "--", "syslog.socket") not in argvs
    assert ("systemctl", "restart", "--", "rsyslog.service") in argvs


# -- absences ---------------------------------------------------------------------------------------

def test_what_the_target_lacks_inside_the_captured_roots_is_removed_from_the_vm(
    make_vm: MakeVm, session: Session, tmp_path: Path
) -> None:
    capture = replace(captured(tmp_path), manifest=Manifest(
        (file_entry("/etc/nginx/nginx.conf"),), missing=("/etc/systemd/system/nginx.service.d",)),
        paths=("/etc/nginx", "/etc/systemd/system/nginx.service.d"))
    in_vm = Manifest((
        file_entry("/etc/nginx/nginx.conf"),
        replace(file_entry("/etc/nginx/sites-enabled"), type="dir"),
        replace(file_entry("/etc/nginx/sites-enabled/default"), type="symlink", link="../sites-available/d"),
        replace(file_entry("/etc/systemd/system/nginx.service.d"), type="dir"),
        file_entry("/etc/systemd/system/nginx.service.d/override.conf"),
    ))
    agent = SandboxAgent(in_vm=in_vm)
    vm, _, transport = make_vm(agent)
    report = vm.import_capture(capture, [NGINX])
    # A directory goes with what is inside it, in one command.
    assert agent.removed == []
    rms = [a for a in transport.argvs if a[0] == "rm"]
    assert rms == [("rm", "-rf", "--", "/etc/nginx/sites-enabled"),
                   ("rm", "-rf", "--", "/etc/systemd/system/nginx.service.d")]
    assert set(report.removed) == {"/etc/nginx/sites-enabled", "/etc/systemd/system/nginx.service.d"}
    # A drop-in directory went away: systemd must forget it.
    assert ("systemctl", "daemon-reload") in transport.argvs
    (event,) = events(session, "absences_mirrored")
    assert event["count"] == 2


def test_a_file_the_target_lacks_is_removed_with_the_agent_and_the_root_itself_is_kept(
    make_vm: MakeVm, tmp_path: Path
) -> None:
    capture = replace(captured(tmp_path), manifest=Manifest((replace(file_entry("/etc/nginx"), type="dir"),)),
                      paths=("/etc/nginx",))
    agent = SandboxAgent(in_vm=Manifest((replace(file_entry("/etc/nginx"), type="dir"),
                                         file_entry("/etc/nginx/extra.conf"))))
    vm, _, transport = make_vm(agent)
    report = vm.import_capture(capture, [NGINX])
    assert agent.removed == ["/etc/nginx/extra.conf"]
    assert report.removed == ("/etc/nginx/extra.conf",)
    assert not any(a[0] == "rm" for a in transport.argvs)


def test_a_capture_at_the_manifest_limit_mirrors_no_absence(make_vm: MakeVm, session: Session,
                                                            tmp_path: Path) -> None:
    many = tuple(file_entry(f"/etc/nginx/f{i}") for i in range(MANIFEST_LIMIT))
    capture = replace(captured(tmp_path), manifest=Manifest(many), paths=("/etc/nginx",))
    agent = SandboxAgent(in_vm=Manifest((file_entry("/etc/nginx/other"),)))
    vm, _, _ = make_vm(agent)
    assert vm.import_capture(capture, [NGINX]).removed == ()
    assert agent.removed == []
    assert events(session, "absences_not_mirrored")


# -- starting on the last run's layer -------------------------------------------------------------


def test_a_guessed_layer_that_does_not_boot_falls_back_to_the_template(
        make_settings: Callable[..., Settings], session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last run's layer is only a guess: its clone failing to boot costs a template boot, not the
    round; a failure of the template's own boot is still raised."""
    booted: list[tuple[str, bool]] = []

    def boot(settings: Settings, name: str, template: str, layer: object = None,
             hypervisor: str = "") -> UpResult:
        booted.append((name, layer is not None))
        if layer is not None:
            raise BootError("the layer's clone did not answer", domain=f"vmrepair-{name}")
        return UpResult(name, 2222, 1.5, "tcg", is_warm=True)

    monkeypatch.setattr("orchestrator.sandbox.vm._boot", boot)
    vm = TroubleshootingVm(App(make_settings()), session)
    guess = SimpleNamespace(key="ab" * 32, manifest=SimpleNamespace(vm_name="lyr-abababababababab"),
                            warm=object())
    monkeypatch.setattr(vm, "_last_layer", lambda: guess)
    try:
        vm.start()
        ready = vm.wait_ready()
    finally:
        vm.destroy()
        vm.app.close()
    assert booted == [("lyr-abababababababab", True), ("trb-debian-12", False)]
    assert ready.name == "trb-debian-12" and vm.layer_key == ""
    (failed,) = events(session, "layer_guess_failed")
    assert failed["error"] == "the layer's clone did not answer"


# -- the agent made ready while the VM waits ------------------------------------------------------


@pytest.mark.parametrize("fails", [False, True])
def test_the_agent_is_made_ready_after_the_boot_and_before_wait_ready_returns(
        make_settings: Callable[..., Settings], session: Session, monkeypatch: pytest.MonkeyPatch,
        fails: bool) -> None:
    """Uploaded and served in the pool's thread right after the boot (off the critical path when the
    VM started early); a failure there is only an event, the import meets it again."""
    def boot(settings: Settings, name: str, template: str, layer: object = None,
             hypervisor: str = "") -> UpResult:
        return UpResult(name, 2222, 1.5, "tcg", is_warm=True)

    monkeypatch.setattr("orchestrator.sandbox.vm._boot", boot)
    vm = TroubleshootingVm(App(make_settings()), session)
    monkeypatch.setattr(vm, "_last_layer", lambda: None)
    agent = SandboxAgent(errors={"disk_usage": AgentError("the agent could not start")} if fails else {})
    vm._agent, vm._transport = agent, FakeTransport(host=vm.name)  # type: ignore[assignment]
    try:
        vm.start()
        assert vm.wait_ready().name == vm.name
        assert agent.calls == [("disk_usage", "/")]
        assert len(events(session, "agent_warm_failed")) == (1 if fails else 0)
    finally:
        vm._pool.shutdown(wait=True)
        vm.app.close()
