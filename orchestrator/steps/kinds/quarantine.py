"""``quarantine``: move one offending file or symlink aside::

    - quarantine: {path: '{offender}', within: [/etc/nginx/sites-enabled]}

Quarantine is a move, not a delete: the file stays in the VM under ``/var/lib/vmrepair/quarantine`` for
the report, and only files under the component's own config/unit paths can be moved. On the target, the
fix package removes it (the diff of the watched paths shows it gone), so nothing is recorded for replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from orchestrator.playbooks.fields import QUARANTINE_ROOT, AbsPath, PathTemplate, Strict, check_quarantine_dir
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import component_roots, within_any
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_path

#: What a quarantine moves: never a directory.
MOVABLE = ("file", "symlink")


class QuarantineSpec(Strict):
    path: PathTemplate
    within: list[AbsPath] = Field(
        default_factory=list, description="only when the path is under one of these (else: not "
        "applicable); always also under the component's config_paths/unit_paths")
    quarantine_dir: AbsPath = QUARANTINE_ROOT

    @model_validator(mode="after")
    def _quarantine_root(self) -> QuarantineSpec:
        check_quarantine_dir(self.quarantine_dir)
        return self


@dataclass(frozen=True)
class QuarantineStep(Step):
    path: Template
    within: tuple[str, ...]
    quarantine_dir: str
    kind: ClassVar[str] = "quarantine"


def _convert(spec: QuarantineSpec) -> QuarantineStep:
    return QuarantineStep(parse_template(spec.path), tuple(spec.within), spec.quarantine_dir)


def run_quarantine(step: QuarantineStep, ctx: RepairContext, io: StepIO) -> str:
    """Move one file or symlink (e.g. the file ``nginx -t`` blames) into quarantine.

    Raises:
        RepairStepError: the path is outside the component's config_paths/unit_paths, or the move failed.
        StepNotApplicableError: the path is not under ``within``, does not exist, or is a directory.
    """
    roots = component_roots(ctx.component)
    path = render_path(step.path, ctx, io, roots)
    if step.within and not within_any(path, step.within):
        raise io.not_applicable(f"{path} is not under {', '.join(step.within)}")
    entry = ctx.agent.manifest([path]).by_path().get(path)
    if entry is None:
        raise io.not_applicable(f"{path} does not exist")
    if entry.type not in MOVABLE:
        raise io.not_applicable(f"{path} is a {entry.type}, only files and symlinks are quarantined")
    io.require_real_dirs([path], roots)
    io.quarantine(path, step.quarantine_dir)
    return f"quarantined {path}"


KIND = register(StepKind(
    name="quarantine", order=50, spec=QuarantineSpec, step=QuarantineStep, convert=_convert,
    run=run_quarantine,
    describe=lambda step: f"quarantine {step.path.raw}",
    templates=lambda step: (step.path,),
    template_fields=("path",),
))
