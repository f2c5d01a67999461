"""``dpkg_configure``: finish the configuration dpkg left undone (an interrupted upgrade, a postinst that
failed), with ``dpkg --configure PACKAGE`` or, for ``all``, ``dpkg --configure -a``::

    - dpkg_configure: {package: '{package}'}
    - dpkg_configure: {package: all, timeout_s: 600}

Not applicable when there is nothing to configure: the package is not unpacked, half-configured or
awaiting triggers (``all``: ``dpkg --audit`` reports nothing). Maintainer scripts run as dpkg runs them,
without questions (``DEBIAN_FRONTEND=noninteractive``), with services held back by our ``policy-rc.d``
exactly as the apply holds them on the target: what starts the service again is the step after this
one (a generated strategy restarts the component), so the VM validates what the target will do.
Recorded for the fix package as a ``dpkg_configure`` operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, field_validator

from orchestrator import dpkg
from orchestrator.fixpkg.ops import DpkgConfigureOp
from orchestrator.playbooks.fields import Strict, Token
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.packages import check_package_template, render_package, services_held, statuses
from orchestrator.steps.registry import Step, StepKind, register

DEFAULT_TIMEOUT_S = 300.0


class DpkgConfigureSpec(Strict):
    package: Token = Field(description="package name, {placeholder}, or all (dpkg --configure -a)")
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)

    @field_validator("package")
    @classmethod
    def _package(cls, value: str) -> str:
        return check_package_template(value, allow_all=True)


@dataclass(frozen=True)
class DpkgConfigureStep(Step):
    package: Template
    timeout_s: float
    kind: ClassVar[str] = "dpkg_configure"


def _convert(spec: DpkgConfigureSpec) -> DpkgConfigureStep:
    return DpkgConfigureStep(parse_template(spec.package), spec.timeout_s)


def run_dpkg_configure(step: DpkgConfigureStep, ctx: RepairContext, io: StepIO) -> str:
    """Configure the package (or every pending one) in the VM and record the operation.

    Raises:
        StepNotApplicableError: nothing to configure.
        RepairStepError: not a package name, dpkg failed or timed out, or the package is still not
            configured afterwards.
    """
    name = render_package(step.package, ctx, io, allow_all=True)
    if name == dpkg.ALL_PACKAGES:
        if not io.run(dpkg.audit_argv(), check=False).stdout_text.strip():
            raise io.not_applicable("dpkg --audit reports no package left unconfigured")
    else:
        found = statuses(name, io)
        if not any(s.needs_configure for s in found):
            state = ", ".join(f"{s.arch} {s.abbrev}" for s in found) or "not installed"
            raise io.not_applicable(f"{name} has nothing to configure ({state})")
    with services_held(io, "configure"):
        io.run(dpkg.configure_argv(name), timeout=step.timeout_s)
    if name == dpkg.ALL_PACKAGES:
        left = io.run(dpkg.audit_argv(), check=False).stdout_text.strip()
        if left:
            raise io.fail(f"dpkg --audit still reports packages after configuring: {left[:500]}")
    elif not all(s.is_installed_ok for s in statuses(name, io) if s.is_present):
        raise io.fail(f"{name} is still not configured after dpkg --configure")
    io.replay_op(DpkgConfigureOp(name))
    return f"configured {'every pending package' if name == dpkg.ALL_PACKAGES else name}"


KIND = register(StepKind(
    name="dpkg_configure", order=45, spec=DpkgConfigureSpec, step=DpkgConfigureStep,
    convert=_convert, run=run_dpkg_configure,
    describe=lambda step: f"dpkg --configure {step.package.raw}",
    templates=lambda step: (step.package,),
    template_fields=("package",),
    replays=frozenset({DpkgConfigureOp.name}),
))
