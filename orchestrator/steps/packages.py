"""Package names in steps: checked when the playbook is loaded (literals) and again once rendered, so
nothing but a Debian package name reaches a dpkg argv; and what the VM's dpkg says about a package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator import dpkg
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO


def check_package_template(value: str, *, allow_all: bool = False) -> str:
    """A literal package name must be a Debian name (a template is checked once rendered).

    Raises:
        ValueError: a literal that is not a package name (pydantic reports it at the key).
    """
    if parse_template(value).is_literal and not dpkg.is_package_name(value) \
            and not (allow_all and value == dpkg.ALL_PACKAGES):
        extra = f" (or {dpkg.ALL_PACKAGES!r})" if allow_all else ""
        raise ValueError(f"{value!r} is not a Debian package name{extra}")
    return value


def render_package(template: Template, ctx: RepairContext, io: StepIO, *, allow_all: bool = False) -> str:
    """The package a step names, rendered and checked before it can reach an argv.

    Raises:
        StepNotApplicableError: a placeholder has no value here.
        RepairStepError: the value is not a package name.
    """
    name = template.render(ctx.values())
    if dpkg.is_package_name(name) or (allow_all and name == dpkg.ALL_PACKAGES and template.is_literal):
        return name
    raise io.fail(f"{name!r} is not a Debian package name")


def statuses(name: str, io: StepIO) -> list[dpkg.PackageStatus]:
    """What the VM's dpkg says about ``name`` (every architecture); empty when it does not know it."""
    return dpkg.parse_status(io.run(dpkg.status_argv(name), check=False).stdout_text, name)


@contextmanager
def services_held(io: StepIO, what: str) -> Iterator[None]:
    """Our ``policy-rc.d`` in place in the VM for the block, as the apply holds services on the target;
    removed whatever happens.

    Raises:
        RepairStepError: the VM has a ``policy-rc.d`` of its own (``set -C`` refused to replace it),
            whose policy we cannot vouch for.
    """
    held = io.run(dpkg.hold_services_argv(), check=False, stdin=dpkg.POLICY_RC_SCRIPT)
    if held.exit_status != 0:
        raise io.fail(f"{dpkg.POLICY_RC} exists in the VM; refusing to {what} under an unknown policy")
    try:
        yield
    finally:
        io.run(dpkg.release_services_argv(), check=False)
