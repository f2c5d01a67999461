"""``make_dir`` and ``set_meta``: a directory a service needs, and the mode/owner of one path::

    - make_dir: {path: /var/lib/app, mode: '0750', owner: app, group: app}
    - set_meta: {path: /etc/app/app.conf, mode: '0640', owner: root, group: app}

Both act on one path (never recursively: a ``chown -R`` of a data directory is not a repair anyone
can review) of the component's own paths: config, unit, data, log and writable paths, or, for the host
component, the system paths whose mode and owner :mod:`orchestrator.detect.sysdirs` watches.
``set_meta`` takes a directory or a regular file alike (``/etc/shadow``) and never reads or writes
a file's content, so it works on a VM's own file whose content is not the target's. Owners are
names (or numeric ids): the VM maps the target's accounts by name. Nothing is recorded for replay: the
change reaches the target through the manifest diff of the captured paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from orchestrator.agent.api import FileEntry
from orchestrator.detect.sysdirs import RULES as SYSTEM_PATHS
from orchestrator.playbooks.fields import PathTemplate, Strict
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import normalize, own_paths
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_path

#: Octal permission bits, with the setuid/setgid/sticky digit or without (``755``, ``1777``).
MODE_PATTERN = r"^[0-7]{3,4}$"
#: An account as useradd accepts it (NAME_REGEX of adduser.conf, ``$`` for machine accounts) or an id.
ACCOUNT_PATTERN = r"^([a-z_][a-z0-9_-]{0,31}\$?|[0-9]{1,10})$"
Mode = Annotated[str, Field(pattern=MODE_PATTERN, description="octal, e.g. '0755' or '1777'")]
Account = Annotated[str, Field(pattern=ACCOUNT_PATTERN, description="a user/group name or a numeric id")]


class MakeDirSpec(Strict):
    path: PathTemplate
    mode: Mode = "0755"
    owner: Account = "root"
    group: Account = "root"


class SetMetaSpec(Strict):
    path: PathTemplate
    mode: Mode | None = None
    owner: Account | None = None
    group: Account | None = None

    @model_validator(mode="after")
    def _something_to_set(self) -> SetMetaSpec:
        if self.mode is None and self.owner is None and self.group is None:
            raise ValueError("set_meta needs at least one of mode, owner, group")
        return self


@dataclass(frozen=True)
class MakeDirStep(Step):
    path: Template
    mode: int
    owner: str
    group: str
    kind: ClassVar[str] = "make_dir"


@dataclass(frozen=True)
class SetMetaStep(Step):
    path: Template
    mode: int | None
    owner: str | None
    group: str | None
    kind: ClassVar[str] = "set_meta"


def _render(template: Template, ctx: RepairContext, io: StepIO) -> tuple[str, tuple[str, ...]]:
    """The path, checked, and the roots its directories are checked below.

    A component without paths of its own (the host) may only touch the system paths themselves:
    ``/`` is one of them, and "below /" would be anywhere.
    """
    own = own_paths(ctx.component)
    if own:
        return render_path(template, ctx, io, own, allow_root=True), own
    raw = template.render(ctx.values())
    path = normalize(raw)
    if path is None or path not in SYSTEM_PATHS:
        raise io.fail(f"refusing {raw!r}: {ctx.component.name} has no paths, and it is not one of the "
                      f"system paths ({', '.join(SYSTEM_PATHS)})")
    return path, tuple(SYSTEM_PATHS)


def _entry(path: str, ctx: RepairContext) -> FileEntry | None:
    # Non-recursive: the path alone, whatever a data directory holds.
    return ctx.agent.manifest([path], recursive=False).by_path().get(path)


def run_make_dir(step: MakeDirStep, ctx: RepairContext, io: StepIO) -> str:
    """Create the directory with its mode and owner (``install -d``; missing parents get 0755 root).

    Raises:
        StepNotApplicableError: it already exists as a directory.
        RepairStepError: the path is outside the component's paths, something other than a directory
            is in the way, a directory on the way is a symlink, or ``install`` failed.
    """
    path, roots = _render(step.path, ctx, io)
    entry = _entry(path, ctx)
    if entry is not None and entry.type == "dir":
        raise io.not_applicable(f"{path} already exists")
    if entry is not None:
        # A file or symlink where the directory belongs may be data: a person decides, not a repair.
        raise io.fail(f"{path} is a {entry.type}, not a directory; left for a person to look at")
    io.require_real_dirs([path], roots)
    io.run(["install", "-d", "-m", f"{step.mode:04o}", "-o", step.owner, "-g", step.group, "--", path])
    return f"created {path} ({step.mode:04o} {step.owner}:{step.group})"


def run_set_meta(step: SetMetaStep, ctx: RepairContext, io: StepIO) -> str:
    """Give one path its mode and/or owner (chmod/chown, never recursive, never through a symlink).

    Raises:
        StepNotApplicableError: the path does not exist, or already has them.
        RepairStepError: the path is outside the component's paths, is a symlink, or a command failed.
    """
    path, roots = _render(step.path, ctx, io)
    entry = _entry(path, ctx)
    if entry is None:
        raise io.not_applicable(f"{path} does not exist")
    if entry.type == "symlink":
        raise io.fail(f"refusing {path}: a symlink (chmod would change what it points at)")
    io.require_real_dirs([path], roots)
    done = []
    if step.mode is not None and entry.mode & 0o7777 != step.mode:
        io.run(["chmod", f"{step.mode:04o}", "--", path])
        done.append(f"mode {entry.mode & 0o7777:04o} -> {step.mode:04o}")
    owner = _differs(step.owner, entry.owner, entry.uid)
    group = _differs(step.group, entry.group, entry.gid)
    if owner or group:
        spec = f"{step.owner or ''}:{step.group or ''}".rstrip(":")
        io.run(["chown", spec, "--", path])
        done.append(f"owner {entry.owner}:{entry.group} -> {spec}")
    if not done:
        raise io.not_applicable(f"{path} already has {_describe(step)}")
    return f"{path}: {', '.join(done)}"


def _differs(wanted: str | None, name: str, number: int) -> bool:
    return wanted is not None and wanted not in (name, str(number))


def _octal(mode: str | None) -> int | None:
    return None if mode is None else int(mode, 8)


def _describe(step: SetMetaStep) -> str:
    parts = [f"mode {step.mode:04o}" if step.mode is not None else "",
             f"owner {step.owner}" if step.owner else "", f"group {step.group}" if step.group else ""]
    return ", ".join(p for p in parts if p)


MAKE_DIR = register(StepKind(
    name="make_dir", order=35, spec=MakeDirSpec, step=MakeDirStep,
    convert=lambda spec: MakeDirStep(parse_template(spec.path), int(spec.mode, 8), spec.owner, spec.group),
    run=run_make_dir,
    describe=lambda step: f"make directory {step.path.raw} ({step.mode:04o} {step.owner}:{step.group})",
    templates=lambda step: (step.path,),
    template_fields=("path",),
))
SET_META = register(StepKind(
    name="set_meta", order=36, spec=SetMetaSpec, step=SetMetaStep,
    convert=lambda spec: SetMetaStep(parse_template(spec.path), _octal(spec.mode), spec.owner, spec.group),
    run=run_set_meta,
    describe=lambda step: f"set {_describe(step)} on {step.path.raw}",
    templates=lambda step: (step.path,),
    template_fields=("path",),
))
