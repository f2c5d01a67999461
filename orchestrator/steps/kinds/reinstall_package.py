"""``reinstall_package``: reinstall a package at exactly the version the target has, restoring its
packaged files (a deleted binary, a truncated library, a damaged packaged unit file)::

    - reinstall_package: {package: '{package}'}

The ``.deb`` comes from the run's :class:`~orchestrator.steps.context.DebSource` (in a run: the target's
apt cache, verified against the target's package database, else the signed Debian mirror — the same
plumbing the host layers use, :mod:`orchestrator.layers.debs`), is checked again on the orchestrator
(sha256) and in the VM (``sha256sum`` after the upload), then installed with
``dpkg --force-confold -i`` (modified conffiles stay as they are). Services are held back by a
``policy-rc.d`` for the duration (:mod:`orchestrator.dpkg`): a restart the fix needs is a ``unit`` step of
its own, replayed on the target in the same way. Recorded for the fix package as a ``deb_install``
operation carrying the ``.deb``.

Not applicable when the VM does not have the package on disk, has it at a version other than the
target's, or no verified ``.deb`` can be had.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, field_validator

from orchestrator import dpkg
from orchestrator.errors import LayerError
from orchestrator.fixpkg.ops import DebInstallOp
from orchestrator.layers.debcheck import file_digest
from orchestrator.playbooks.fields import Strict, Token
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext, VerifiedDeb
from orchestrator.steps.io import StepIO
from orchestrator.steps.packages import check_package_template, render_package, services_held, statuses
from orchestrator.steps.registry import Step, StepKind, register

#: Where the .deb is uploaded in the VM (root-only, on a tmpfs: nothing of it survives the VM).
VM_DEB_DIR = "/run/vmrepair-debs"
DEFAULT_TIMEOUT_S = 300.0


class ReinstallPackageSpec(Strict):
    package: Token = Field(description="package name or {placeholder}")
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)

    @field_validator("package")
    @classmethod
    def _package(cls, value: str) -> str:
        return check_package_template(value)


@dataclass(frozen=True)
class ReinstallPackageStep(Step):
    package: Template
    timeout_s: float
    kind: ClassVar[str] = "reinstall_package"


def _convert(spec: ReinstallPackageSpec) -> ReinstallPackageStep:
    return ReinstallPackageStep(parse_template(spec.package), spec.timeout_s)


def run_reinstall_package(step: ReinstallPackageStep, ctx: RepairContext, io: StepIO) -> str:
    """Reinstall the package in the VM from the target's verified .deb and record the operation.

    Raises:
        StepNotApplicableError: the package is not on disk in the VM (or on several architectures), no
            source of .debs in this run, or no verified .deb of the target's version.
        RepairStepError: not a package name, the .deb does not verify, dpkg failed or timed out, or the
            package is not installed at that version afterwards.
    """
    name = render_package(step.package, ctx, io)
    present = [s for s in statuses(name, io) if s.is_present]
    if len(present) != 1:
        found = "not installed" if not present else f"installed for {len(present)} architectures"
        raise io.not_applicable(f"{name} is {found} in the VM; nothing to reinstall")
    (status,) = present
    if ctx.debs is None:
        raise io.not_applicable("this run has no way to obtain the target's .deb files")
    try:
        deb = ctx.debs.obtain(name, status.version, status.arch)
    except LayerError as exc:
        raise io.not_applicable(f"no verified .deb of {name} {status.version}: {exc.message}") from exc
    _check_local(deb, name, status, io)
    remote = f"{VM_DEB_DIR}/{deb.sha256}.deb"
    io.run(["install", "-d", "-m", "0700", "--", VM_DEB_DIR])
    ctx.transport.put_file(deb.path, remote, mode=0o600)
    try:
        got = io.run(["sha256sum", "--", remote]).stdout_text.split()
        if not got or got[0] != deb.sha256:
            raise io.fail(f"the .deb uploaded to the VM does not match its sha256 {deb.sha256[:12]}")
        _install_holding_services(remote, step.timeout_s, io)
    finally:
        io.run(["rm", "-f", "--", remote], check=False)
    after = [s for s in statuses(name, io) if s.arch == status.arch]
    if not after or not after[0].is_installed_ok or after[0].version != status.version:
        state = f"{after[0].abbrev} {after[0].version}" if after else "gone"
        raise io.fail(f"after the reinstall {name}:{status.arch} is {state}, not installed at "
                      f"{status.version}")
    io.replay_op(DebInstallOp(name, status.version, status.arch, deb.sha256, deb.size))
    io.note(f"reinstalled {name} {status.version} ({status.arch}) from {deb.source}, "
            f"sha256 {deb.sha256[:12]}")
    return f"reinstalled {name} {status.version} from {posixpath.basename(str(deb.path))}"


def _check_local(deb: VerifiedDeb, name: str, status: dpkg.PackageStatus, io: StepIO) -> None:
    """The source's answer is what was asked, and the file on disk still hashes to it."""
    if (deb.name, deb.version, deb.arch) != (name, status.version, status.arch):
        raise io.fail(f"asked for {name} {status.version} {status.arch}, "
                      f"got {deb.name} {deb.version} {deb.arch}")
    try:
        digest, size = file_digest(deb.path), deb.path.stat().st_size
    except OSError as exc:
        raise io.fail(f"cannot read {deb.path}: {exc.strerror or exc}") from exc
    if digest != deb.sha256 or size != deb.size:
        raise io.fail(f"{deb.path} no longer matches its sha256 {deb.sha256[:12]}")


def _install_holding_services(remote: str, timeout: float, io: StepIO) -> None:
    with services_held(io, "reinstall"):
        io.run(dpkg.install_argv(remote), timeout=timeout)


KIND = register(StepKind(
    name="reinstall_package", order=42, spec=ReinstallPackageSpec, step=ReinstallPackageStep,
    convert=_convert, run=run_reinstall_package,
    describe=lambda step: f"reinstall {step.package.raw} at the target's version",
    templates=lambda step: (step.package,),
    template_fields=("package",),
    replays=frozenset({DebInstallOp.name}),
))
