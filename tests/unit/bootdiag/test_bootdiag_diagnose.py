"""diagnose_components on a scripted target: presence, health, the remediation order, reduced mode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.bootdiag import (
    ActionKind,
    ActionStatus,
    BootDiagnosis,
    ComponentState,
    diagnose_components,
)
from orchestrator.bootdiag.fetched import FetchedDebs, stage_fetched
from orchestrator.components.config import WatchConfig
from orchestrator.detect.packages import STATUS_FORMAT
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.model import Component, HttpCheck
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import dpkg_status_answer
from tests.unit.quarantine.target import APP, NGINX, Target, make_target
from tests.unit.repair.fakes import FakeBaseline, Node

GOOD_CONF = b"events {}\nhttp { include sites-enabled/*; }\n"
BAD_CONF = b"events {}\nhttp { sever_name x; }\n"
DEB = "/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb"
CRON = Component(name="cron", vital=False, units=("cron.service",), packages=("cron",),
                 config_paths=("/etc/crontab",))
WATCH = WatchConfig((NGINX, APP, CRON))
#: The same components, each declaring a stub (watch.components[].stub: true).
STUBBED = WatchConfig(tuple(dataclasses.replace(c, stub=True) for c in (NGINX, APP, CRON)))
DROPIN = "/run/systemd/system/nginx.service.d/zz-vmrepair-stub.conf"


@dataclass
class Boot:
    """A target with dpkg, apt and a config test that reads nginx.conf from the file tree."""

    target: Target = field(default_factory=make_target)
    packages: dict[str, str] = field(default_factory=lambda: {"nginx": "install ok installed",
                                                              "cron": "install ok installed"})
    audit_output: bytes = b""
    apt_exit: int = 0
    #: What `dpkg --verify` says until a reinstall puts the files back.
    damaged: bytes = b""

    def __post_init__(self) -> None:
        answers = self.target.vm.answers
        answers["dpkg-query",] = self.dpkg_query
        answers["dpkg", "--audit"] = lambda argv: (0, self.audit_output, b"")
        answers["dpkg", "--verify"] = lambda argv: (1 if self.damaged else 0, self.damaged, b"")
        answers["env",] = self.apt_get
        # systemd is PID 1: apt runs as a transient unit (outside the daemon's ProtectSystem=yes).
        answers["test", "-d", "/run/systemd/system"] = (0, b"", b"")
        answers["systemd-run",] = lambda argv: self.apt_get(argv[argv.index("--") + 1:])
        answers["nginx", "-t"] = self.nginx_t

    def dpkg_query(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if STATUS_FORMAT in argv:   # the dpkg probe's query, of the same packages
            return dpkg_status_answer(argv, self.packages)
        known = [p for p in argv[3:] if p in self.packages]
        out = "".join(f"{p}\t{self.packages[p]}\n" for p in known)
        return (0 if len(known) == len(argv[3:]) else 1), out.encode(), b""

    def apt_get(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        if self.apt_exit:
            return self.apt_exit, b"", b"E: Could not get lock /var/lib/dpkg/lock-frontend\n"
        for package in argv[argv.index("Dpkg::Options::=--force-confmiss") + 1:]:
            self.packages[package] = "install ok installed"
        self.damaged = b""
        return 0, b"Setting up nginx ...\n", b""

    def nginx_t(self, argv: tuple[str, ...]) -> tuple[int, bytes, bytes]:
        conf = self.target.agent.fs.get("/etc/nginx/nginx.conf")
        if conf is not None and conf.data == GOOD_CONF:
            return 0, b"", b"nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
        return 1, b"", b"nginx: [emerg] unknown directive \"sever_name\"\n"

    def run(self, *, remediate: bool, baseline: FakeBaseline | None = None,
            watch: WatchConfig = WATCH) -> BootDiagnosis:
        return diagnose_components(self.target.transport, self.target.agent, watch, baseline=baseline,
                                   audit=self.target.audit, remediate=remediate, sleep=lambda _s: None)

    def argvs(self, program: str) -> list[tuple[str, ...]]:
        """Commands of ``program`` run, those run through ``systemd-run`` included (their own argv)."""
        runs = [a[a.index("--") + 1:] if a[0] == "systemd-run" else a for a in self.target.transport.argvs]
        return [a for a in runs if a[0] == program]


def baseline_with_good_conf() -> FakeBaseline:
    return FakeBaseline({"/etc/nginx": Node("dir", mode=0o755),
                         "/etc/nginx/nginx.conf": Node("file", GOOD_CONF)})


@pytest.fixture
def boot() -> Boot:
    return Boot()


def test_healthy_target(boot: Boot) -> None:
    diagnosis = boot.run(remediate=True)
    assert [(c.name, c.state, c.actions, c.dependencies.score) for c in diagnosis.components] == [
        ("nginx", ComponentState.HEALTHY, (), 100), ("sampleapp", ComponentState.HEALTHY, (), 100),
        ("cron", ComponentState.HEALTHY, (), 100)]
    assert not diagnosis.has_broken_vital
    assert boot.target.audit.records == []
    assert boot.argvs("env") == []


def test_broken_vital_component_is_only_reported_without_remediate(boot: Boot) -> None:
    boot.target.agent.fs["/etc/nginx/nginx.conf"].data = BAD_CONF
    diagnosis = boot.run(remediate=False)
    nginx = diagnosis.components[0]
    assert (nginx.found, nginx.state, nginx.actions) == (ComponentState.BROKEN, ComponentState.BROKEN, ())
    assert "nginx: config test `nginx -t` exited 1" in nginx.problems
    assert diagnosis.has_broken_vital
    (error,) = boot.target.audit.records
    assert (error["event"], error["component"], error["details"]["vital"]) == ("error", "nginx", True)
    assert error["details"]["message"].startswith("nginx is broken at boot: nginx: config test")
    assert boot.argvs("env") == []
    assert not [c for c in boot.target.agent.calls if c[0] == "write_file"]


def test_remediation_order_reinstall_then_baseline(boot: Boot) -> None:
    boot.target.agent.fs["/etc/nginx/nginx.conf"].data = BAD_CONF
    boot.target.vm.debs[DEB] = {}
    diagnosis = boot.run(remediate=True, baseline=baseline_with_good_conf())
    nginx = diagnosis.components[0]
    assert [(a.kind, a.status) for a in nginx.actions] == [
        (ActionKind.REINSTALL, ActionStatus.DONE), (ActionKind.RESTORE_BASELINE, ActionStatus.FIXED)]
    assert (nginx.found, nginx.state) == (ComponentState.BROKEN, ComponentState.HEALTHY)
    assert boot.argvs("env") == [("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                                  "--reinstall", "--no-download", "-y", "-o",
                                  "Dpkg::Options::=--force-confold", "-o",
                                  "Dpkg::Options::=--force-confmiss", "nginx")]
    (wrapped,) = [a for a in boot.target.transport.argvs if a[0] == "systemd-run"]
    assert wrapped[1].startswith("--unit=vmrepair-reinstall-") and wrapped[1].endswith(".service")
    assert wrapped[2:wrapped.index("--")] == ("--quiet", "--wait", "--pipe", "--collect",
                                             "--service-type=exec", "--property=RuntimeMaxSec=895")
    assert boot.target.agent.fs["/etc/nginx/nginx.conf"].data == GOOD_CONF
    assert ("systemctl", "restart", "--", "nginx.service") in boot.target.transport.argvs
    recoveries = [r for r in boot.target.audit.records if r["event"] == "recovery"]
    assert [(r["details"]["action"], r["status"]) for r in recoveries] == [
        ("reinstall", "done"), ("restore_baseline", "fixed")]
    assert not diagnosis.has_broken_vital


def test_missing_package_is_reinstalled_from_the_cache(boot: Boot) -> None:
    boot.packages["nginx"] = "deinstall ok config-files"
    boot.target.vm.debs[DEB] = {}
    nginx = boot.run(remediate=True).components[0]
    assert nginx.found is ComponentState.MISSING
    assert [(a.kind, a.status, a.detail) for a in nginx.actions] == [
        (ActionKind.REINSTALL, ActionStatus.FIXED, "reinstalled nginx from the local package cache")]
    assert nginx.state is ComponentState.HEALTHY


def test_a_deleted_program_of_an_installed_package_is_reinstalled(boot: Boot) -> None:
    """dpkg still says "installed": only `dpkg --verify` (the detector's packages probe) shows the
    binary is gone."""
    boot.damaged = b"missing     /usr/sbin/nginx\n??5?????? c /etc/nginx/nginx.conf\n"
    boot.target.vm.debs[DEB] = {}
    nginx = boot.run(remediate=True).components[0]
    assert nginx.found is ComponentState.BROKEN
    assert nginx.problems == ()
    assert [(a.kind, a.status) for a in nginx.actions] == [(ActionKind.REINSTALL, ActionStatus.FIXED)]
    assert nginx.state is ComponentState.HEALTHY
    errors = [r for r in boot.target.audit.records if r["event"] == "error"]
    assert errors[0]["details"]["message"] == (
        "nginx is broken at boot: nginx: packaged file /usr/sbin/nginx (missing)")


def test_uncached_package_is_skipped_never_downloaded(boot: Boot) -> None:
    boot.packages["nginx"] = "deinstall ok config-files"
    nginx = boot.run(remediate=True).components[0]
    reinstall = nginx.actions[0]
    assert (reinstall.kind, reinstall.status) == (ActionKind.REINSTALL, ActionStatus.SKIPPED)
    assert reinstall.detail == "no .deb of nginx in /var/cache/apt/archives"
    assert boot.argvs("env") == []


def test_failed_reinstall_is_recorded_and_the_next_step_tried(boot: Boot) -> None:
    boot.target.agent.fs["/etc/nginx/nginx.conf"].data = BAD_CONF
    boot.target.vm.debs[DEB] = {}
    boot.apt_exit = 100
    nginx = boot.run(remediate=True, baseline=baseline_with_good_conf()).components[0]
    assert nginx.actions[0].status is ActionStatus.FAILED
    assert nginx.actions[0].detail == ("apt-get exited 100: E: Could not get lock "
                                       "/var/lib/dpkg/lock-frontend")
    assert nginx.actions[1].status is ActionStatus.FIXED


def test_unfixable_vital_component_stays_broken_without_a_declared_stub(boot: Boot) -> None:
    boot.target.agent.fs["/etc/nginx/nginx.conf"].data = BAD_CONF
    diagnosis = boot.run(remediate=True)
    nginx = diagnosis.components[0]
    assert [(a.kind, a.status) for a in nginx.actions][-1] == (ActionKind.STUB_UNIT, ActionStatus.SKIPPED)
    assert nginx.actions[-1].detail == ("no stub declared for nginx (watch.components[].stub): it stays down "
                                        "and the host degraded until it is repaired")
    assert nginx.state is ComponentState.BROKEN and diagnosis.has_broken_vital
    assert DROPIN not in boot.target.agent.fs


def test_unfixable_vital_component_gets_a_stub_and_runs_reduced(boot: Boot) -> None:
    boot.target.agent.fs["/etc/nginx/nginx.conf"].data = BAD_CONF
    boot.target.vm.answers["curl",] = (7, b"000", b"curl: (7) Failed to connect\n")
    diagnosis = boot.run(remediate=True, watch=STUBBED)
    nginx = diagnosis.components[0]
    assert [(a.kind, a.status) for a in nginx.actions] == [
        (ActionKind.REINSTALL, ActionStatus.SKIPPED), (ActionKind.RESTORE_BASELINE, ActionStatus.SKIPPED),
        (ActionKind.STUB_UNIT, ActionStatus.DONE)]
    assert nginx.actions[1].detail == "no baseline of this target (record one with `vmrepair baseline`)"
    assert nginx.state is ComponentState.REDUCED
    stub = boot.target.agent.fs[DROPIN].data.decode()
    assert "Description=vmrepair stub for nginx.service (nginx broken: reduced mode)" in stub
    assert "Type=oneshot\nRemainAfterExit=yes\n" in stub
    assert "ExecStart=\nExecStart=/bin/true\n" in stub
    assert diagnosis.has_broken_vital
    stub_record = boot.target.audit.records[-1]
    assert (stub_record["details"]["action"], stub_record["details"]["reduced_mode"]) == (
        "stub_unit", True)


def test_missing_unit_gets_a_whole_stub_unit(boot: Boot) -> None:
    boot.target.systemd.gone("sampleapp.service")
    app = boot.run(remediate=True, watch=STUBBED).components[1]
    assert (app.found, app.state) == (ComponentState.MISSING, ComponentState.REDUCED)
    assert app.problems[0] == "a vmrepair stub stands in: /run/systemd/system/sampleapp.service"
    found = boot.target.audit.records[0]
    assert found["details"]["message"] == (
        "sampleapp is missing at boot: unit sampleapp.service has no unit file; "
        "sampleapp.service: unit file is gone (LoadState=not-found)")
    stub = boot.target.agent.fs["/run/systemd/system/sampleapp.service"].data.decode()
    assert "Description=vmrepair stub for sampleapp.service (sampleapp missing: reduced mode)" in stub
    assert app.actions[-1].kind is ActionKind.STUB_UNIT


def test_a_later_run_removes_the_stub_once_the_component_works(boot: Boot) -> None:
    boot.target.agent.put(DROPIN, Node("file", b"[Unit]\nDescription=vmrepair stub for nginx.service\n"))
    nginx = boot.run(remediate=True).components[0]
    assert nginx.found is ComponentState.REDUCED
    assert [(a.kind, a.status) for a in nginx.actions] == [(ActionKind.REMOVE_STUB, ActionStatus.FIXED)]
    assert DROPIN not in boot.target.agent.fs
    assert nginx.state is ComponentState.HEALTHY


def test_someone_elses_runtime_unit_is_not_taken_for_a_stub(boot: Boot) -> None:
    boot.target.agent.put("/run/systemd/system/nginx.service", Node("file", b"[Service]\nExecStart=/x\n"))
    nginx = boot.run(remediate=True).components[0]
    assert nginx.found is ComponentState.HEALTHY
    assert "/run/systemd/system/nginx.service" in boot.target.agent.fs


def test_optional_component_is_only_reported(boot: Boot) -> None:
    boot.packages["cron"] = "install ok half-configured"
    boot.target.vm.debs["/var/cache/apt/archives/cron_3.0_amd64.deb"] = {}
    diagnosis = boot.run(remediate=True)
    cron = diagnosis.components[2]
    assert (cron.found, cron.state, cron.actions) == (ComponentState.MISSING, ComponentState.MISSING, ())
    # Presence (dpkg's state) and the dpkg probe among the component's probes both say it.
    assert cron.problems == ("package cron is half-configured", "cron: package cron iF (half-configured)")
    assert cron.action_summary == "none (optional: reduced features)"
    assert not diagnosis.has_broken_vital
    assert boot.argvs("env") == []


def test_nothing_checkable_is_unknown_not_broken(boot: Boot) -> None:
    boot.target.systemd.present = False
    boot.target.vm.answers["curl",] = (127, b"", b"sh: 1: curl: not found\n")
    watch = WatchConfig((Component(name="web", units=("web.service",),
                                   http=(HttpCheck("http://127.0.0.1:81/"),)),))
    (web,) = boot.run(remediate=True, watch=watch).components
    assert web.state is ComponentState.UNKNOWN
    assert web.actions == ()
    assert "unit web.service: the target does not run systemd as PID 1" in web.problems


def test_a_broken_boot_critical_component_is_never_changed_in_place(boot: Boot) -> None:
    """fstab & co are proven only by a boot: left to `vmrepair run` and its troubleshooting VM."""
    fstab = Component(name="boot", config_paths=("/etc/fstab",), config_test=("findmnt", "--verify"))
    boot.target.vm.answers["findmnt", "--verify"] = lambda argv: (1, b"", b"[E] unreachable source\n")
    diagnosis = boot.run(remediate=True, baseline=baseline_with_good_conf(), watch=WatchConfig((fstab,)))
    (component,) = diagnosis.components
    assert component.state == ComponentState.BROKEN and diagnosis.has_broken_vital
    assert [(a.kind, a.status) for a in component.actions] == [
        (ActionKind.RESTORE_BASELINE, ActionStatus.SKIPPED)]
    assert "run `vmrepair run`" in component.actions[0].detail
    assert not [c for c in boot.target.agent.calls if c[0] == "write_file"]
    assert boot.argvs("env") == [] and not [a for a in boot.target.transport.argvs if "restart" in a]


def _fetched(tmp_path: Path, *, control: bytes) -> FetchedDebs:
    """A download cache holding nginx 1.22.1-9 amd64, and a dpkg-deb that reads ``control`` from it."""
    (tmp_path / "debs").mkdir()
    (tmp_path / "debs" / "nginx_1.22.1-9_amd64.deb").write_bytes(b"!<arch>\n")

    def dpkg_deb(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        assert argv[:2] == ("dpkg-deb", "--field")
        return 0, control, b""

    return FetchedDebs(FakeTransport(dpkg_deb), tmp_path)


def test_a_deb_the_target_lacks_comes_from_the_orchestrators_download_cache(boot: Boot,
                                                                          tmp_path: Path) -> None:
    boot.packages["nginx"] = "deinstall ok config-files"
    boot.target.vm.answers["dpkg-query", "-W", "-f", PACKAGE_FORMAT] = (
        0, b"nginx\t1.22.1-9\tamd64\tii \tinstall ok installed\n", b"")
    fetched = _fetched(tmp_path, control=b"Package: nginx\nVersion: 1.22.1-9\nArchitecture: amd64\n")
    nginx = diagnose_components(boot.target.transport, boot.target.agent, WATCH, baseline=None,
                                audit=boot.target.audit, remediate=True, sleep=lambda _s: None,
                                fetched=fetched).components[0]
    assert boot.target.transport.files["/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb"] == b"!<arch>\n"
    assert [(a.kind, a.status, a.detail) for a in nginx.actions] == [
        (ActionKind.REINSTALL, ActionStatus.FIXED, "reinstalled nginx from the local package cache (nginx "
         "copied from the orchestrator's download cache)")]


def test_a_cached_deb_of_another_version_is_not_used(boot: Boot, tmp_path: Path) -> None:
    boot.packages["nginx"] = "deinstall ok config-files"
    boot.target.vm.answers["dpkg-query", "-W", "-f", PACKAGE_FORMAT] = (
        0, b"nginx\t1.22.1-9\tamd64\tii \tinstall ok installed\n", b"")
    fetched = _fetched(tmp_path, control=b"Package: nginx\nVersion: 1.24.0-1\nArchitecture: amd64\n")
    assert stage_fetched(boot.target.transport, fetched, ["nginx"]) == (
        [], ["nginx_1.22.1-9_amd64.deb in " + str(tmp_path / "debs") + " is another package: its control "
             "fields say nginx 1.24.0-1 amd64: not used"])
    assert boot.target.transport.files == {}
