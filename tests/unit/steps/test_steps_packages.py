"""The package step kinds on a fake VM: names checked at load and once rendered, applicability, the
verified .deb, services held, and the operations recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator import dpkg
from orchestrator.errors import LayerError, RepairStepError, StepNotApplicableError
from orchestrator.model import IssueKind
from orchestrator.steps.context import RepairContext, VerifiedDeb
from orchestrator.steps.io import StepIO
from orchestrator.steps.kinds.dpkg_configure import DpkgConfigureSpec
from orchestrator.steps.kinds.reinstall_package import ReinstallPackageSpec
from orchestrator.steps.registry import kinds, run_step
from tests.unit.fake_agent import FakeAgent
from tests.unit.fake_dpkg import FakeDpkgHost, FakePackage
from tests.unit.repair.fakes import NGINX, issue

BIN = "/usr/sbin/nginx"


class Debs:
    """A DebSource over files in a directory; ``refuse`` makes obtain raise."""

    def __init__(self, directory: Path, packages: list[FakePackage], refuse: str = "") -> None:
        self.directory, self.packages, self.refuse = directory, packages, refuse
        self.asked: list[tuple[str, str, str]] = []

    def obtain(self, name: str, version: str, arch: str) -> VerifiedDeb:
        self.asked.append((name, version, arch))
        if self.refuse:
            raise LayerError(self.refuse, step="reinstall")
        p = next(p for p in self.packages if (p.name, p.version, p.arch) == (name, version, arch))
        path = self.directory / f"{name}.deb"
        path.write_bytes(p.deb)
        return VerifiedDeb(name, version, arch, path, p.deb_sha256, len(p.deb), "target-cache")

    def content(self, name: str, version: str, arch: str, sha256: str) -> bytes | None:
        return None


def vm(status: str = "ii ") -> FakeDpkgHost:
    agent = FakeAgent()
    agent.file(BIN, b"")
    return FakeDpkgHost(agent, [FakePackage("nginx", "1.22.1-9", "amd64", status, {BIN: b"\x7fELF nginx\n"})],
                        host="vm")


def context(h: FakeDpkgHost, variables: dict[str, str], **kwargs: object) -> RepairContext:
    return RepairContext(h.transport, h.agent, issue("nginx", IssueKind.UNIT_FAILED, "nginx.service"), NGINX,
                         variables=variables, sleep=lambda _s: None, **kwargs)  # type: ignore[arg-type]


def run(kind: str, spec: dict[str, object], h: FakeDpkgHost, **ctx_args: object) -> tuple[str, StepIO]:
    step = kinds()[kind].convert(kinds()[kind].spec.model_validate(spec))
    ctx = context(h, {"package": "nginx"}, **ctx_args)
    io = StepIO(ctx, "strategy", kind)
    return run_step(step, ctx, io), io


@pytest.mark.parametrize("spec", [ReinstallPackageSpec, DpkgConfigureSpec])
@pytest.mark.parametrize("name", ["-a", "--force-all", "nginx;reboot", "Nginx", "x", "nginx\n"])
def test_hostile_literal_names_are_refused_at_load(spec: type[ReinstallPackageSpec], name: str) -> None:
    with pytest.raises(ValidationError, match="is not a Debian package name"):
        spec.model_validate({"package": name})


def test_all_is_a_keyword_of_dpkg_configure_only() -> None:
    assert DpkgConfigureSpec.model_validate({"package": "all"}).package == "all"
    ReinstallPackageSpec.model_validate({"package": "{package}"})   # checked once rendered


def test_a_hostile_rendered_name_never_reaches_an_argv(tmp_path: Path) -> None:
    h = vm()
    step = kinds()["reinstall_package"].convert(ReinstallPackageSpec(package="{offender}"))
    ctx = context(h, {"offender": "-oAPT::x"})
    with pytest.raises((RepairStepError, StepNotApplicableError)):
        run_step(step, ctx, StepIO(ctx, "s", "reinstall"))
    assert h.transport.argvs == []


def test_reinstall_installs_the_verified_deb_with_services_held(tmp_path: Path) -> None:
    h = vm()
    debs = Debs(tmp_path, h.packages)
    summary, io = run("reinstall_package", {"package": "{package}"}, h, debs=debs)
    assert summary == "reinstalled nginx 1.22.1-9 from nginx.deb"
    assert debs.asked == [("nginx", "1.22.1-9", "amd64")]
    assert h.agent.files[BIN].data == b"\x7fELF nginx\n"
    argvs = h.transport.argvs
    hold = argvs.index(tuple(dpkg.hold_services_argv()))
    install = next(i for i, a in enumerate(argvs)
                   if a[:4] == ("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--force-confold"))
    assert hold < install < argvs.index(tuple(dpkg.release_services_argv()))
    assert dpkg.POLICY_RC not in h.agent.fs and h.transport.files == {}
    sha = hashlib.sha256(h.packages[0].deb).hexdigest()
    assert io.replay == [{"op": "deb_install", "package": "nginx", "version": "1.22.1-9",
                          "architecture": "amd64", "sha256": sha, "size": len(h.packages[0].deb)}]


def test_reinstall_is_not_applicable_without_a_verified_deb(tmp_path: Path) -> None:
    h = vm()
    with pytest.raises(StepNotApplicableError, match=r"no way to obtain the target's \.deb files"):
        run("reinstall_package", {"package": "nginx"}, h)
    with pytest.raises(StepNotApplicableError, match=r"no verified \.deb of nginx 1\.22\.1-9: the target"):
        run("reinstall_package", {"package": "nginx"}, h, debs=Debs(tmp_path, [], "the target has 1.22"))
    with pytest.raises(StepNotApplicableError, match="nothing to reinstall"):
        run("reinstall_package", {"package": "apache2"}, h, debs=Debs(tmp_path, []))
    assert h.installs == []


def test_a_deb_changed_on_disk_after_it_was_verified_is_refused(tmp_path: Path) -> None:
    h = vm()

    class Tampered(Debs):
        def obtain(self, name: str, version: str, arch: str) -> VerifiedDeb:
            deb = super().obtain(name, version, arch)
            deb.path.write_bytes(b"!<arch>\nevil\n")
            return deb

    with pytest.raises(RepairStepError, match="no longer matches its sha256"):
        run("reinstall_package", {"package": "nginx"}, h, debs=Tampered(tmp_path, h.packages))
    assert h.installs == []


def test_a_policy_rc_of_the_vms_own_is_not_overridden(tmp_path: Path) -> None:
    h = vm()
    h.agent.file(dpkg.POLICY_RC, b"#!/bin/sh\nexit 0\n", 0o755)
    with pytest.raises(RepairStepError, match=r"policy-rc\.d exists in the VM"):
        run("reinstall_package", {"package": "nginx"}, h, debs=Debs(tmp_path, h.packages))
    assert h.agent.files[dpkg.POLICY_RC].data == b"#!/bin/sh\nexit 0\n" and h.installs == []


def test_dpkg_configure_runs_only_when_something_is_pending() -> None:
    with pytest.raises(StepNotApplicableError, match=r"nginx has nothing to configure \(amd64 ii\)"):
        run("dpkg_configure", {"package": "{package}"}, vm())
    h = vm("iF ")
    summary, io = run("dpkg_configure", {"package": "{package}"}, h)
    assert summary == "configured nginx" and h.packages[0].status == "ii "
    assert io.replay == [{"op": "dpkg_configure", "package": "nginx"}]
    argvs = h.transport.argvs
    configure = argvs.index(("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", "nginx"))
    # Held as on the target: the step after it (a restart) starts the service, not the postinst.
    assert argvs.index(tuple(dpkg.hold_services_argv())) < configure \
        < argvs.index(tuple(dpkg.release_services_argv()))
    assert dpkg.POLICY_RC not in h.agent.fs


def test_dpkg_configure_under_a_policy_rc_of_the_vms_own_is_refused() -> None:
    h = vm("iF ")
    h.agent.file(dpkg.POLICY_RC, b"#!/bin/sh\nexit 0\n", 0o755)
    with pytest.raises(RepairStepError, match=r"policy-rc\.d exists in the VM; refusing to configure"):
        run("dpkg_configure", {"package": "nginx"}, h)
    assert h.packages[0].status == "iF " and h.agent.files[dpkg.POLICY_RC].data == b"#!/bin/sh\nexit 0\n"


def test_dpkg_configure_all() -> None:
    with pytest.raises(StepNotApplicableError, match="dpkg --audit reports no package"):
        run("dpkg_configure", {"package": "all"}, vm())
    h = vm("iU ")
    summary, io = run("dpkg_configure", {"package": "all", "timeout_s": 30}, h)
    assert summary == "configured every pending package"
    assert io.replay == [{"op": "dpkg_configure", "package": "all"}]
    call = next(c for c in h.transport.calls if c.argv[-2:] == ("--configure", "-a"))
    assert call.timeout == 30


def test_dpkg_configure_that_fails_fails_the_attempt() -> None:
    h = vm("iF ")
    h.configure_fails = True
    with pytest.raises(RepairStepError, match="exited 1"):
        run("dpkg_configure", {"package": "nginx"}, h)
    assert dpkg.POLICY_RC not in h.agent.fs   # released whatever happened
