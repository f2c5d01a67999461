"""``quarantine_unknown_dropins``: move aside the administrator drop-ins of a unit that the baseline does
not have (or, without a baseline, those ``systemd-analyze verify`` blames)::

    - quarantine_unknown_dropins: {unit: '{unit}'}

Like ``quarantine``, a move into ``/var/lib/vmrepair/quarantine``, never a delete; the fix package
carries the removal to the target through its diff of the unit paths.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import ClassVar

from pydantic import model_validator

from orchestrator.playbooks.fields import QUARANTINE_ROOT, AbsPath, Strict, Token, check_quarantine_dir
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.kinds.quarantine import MOVABLE
from orchestrator.steps.paths import within_any
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_unit

#: Where systemd reads administrator drop-ins of a unit (the only place a component's unit_paths name).
DROPIN_PARENT = "/etc/systemd/system"


class QuarantineDropinsSpec(Strict):
    unit: Token = "{unit}"
    quarantine_dir: AbsPath = QUARANTINE_ROOT

    @model_validator(mode="after")
    def _quarantine_root(self) -> QuarantineDropinsSpec:
        check_quarantine_dir(self.quarantine_dir)
        return self


@dataclass(frozen=True)
class QuarantineUnknownDropinsStep(Step):
    unit: Template
    quarantine_dir: str
    kind: ClassVar[str] = "quarantine_unknown_dropins"


def _convert(spec: QuarantineDropinsSpec) -> QuarantineUnknownDropinsStep:
    return QuarantineUnknownDropinsStep(parse_template(spec.unit), spec.quarantine_dir)


def run_quarantine_unknown_dropins(step: QuarantineUnknownDropinsStep, ctx: RepairContext,
                                   io: StepIO) -> str:
    """Quarantine the unit's drop-ins that the baseline does not have — or, without a baseline, those
    ``systemd-analyze verify`` blames.

    Raises:
        StepNotApplicableError: the drop-in directory is not among the component's unit_paths, or no
            drop-in qualifies.
        RepairStepError: a move failed.
    """
    unit = render_unit(step.unit, ctx, io)
    dropin_dir = f"{DROPIN_PARENT}/{unit}.d"
    roots = ctx.component.unit_paths
    if not within_any(dropin_dir, roots):
        raise io.not_applicable(f"{dropin_dir} is not among the unit_paths of {ctx.component.name}")
    entries = ctx.agent.manifest([dropin_dir]).entries
    # systemd only reads *.conf from a drop-in directory; other files there are inert.
    dropins = sorted(e.path for e in entries if e.type in MOVABLE and e.path.endswith(".conf")
                     and posixpath.dirname(e.path) == dropin_dir)
    if not dropins:
        raise io.not_applicable(f"{unit} has no drop-ins in {dropin_dir}")
    if ctx.baseline is not None:
        known = set(ctx.baseline.paths_under(dropin_dir))
        suspects, basis = [d for d in dropins if d not in known], "not in the baseline"
    else:
        result = io.run(["systemd-analyze", "verify", unit], check=False)
        blamed = result.stdout_text + result.stderr_text
        suspects = [d for d in dropins if re.search(re.escape(d) + r"(?![\w.-])", blamed)]
        basis = "blamed by systemd-analyze verify"
    if not suspects:
        raise io.not_applicable(f"no drop-in of {unit} is {basis}")
    io.require_real_dirs(suspects, roots)
    for path in suspects:
        io.quarantine(path, step.quarantine_dir)
    return f"quarantined {len(suspects)} drop-in(s) {basis}: {', '.join(suspects)}"


KIND = register(StepKind(
    name="quarantine_unknown_dropins", order=60, spec=QuarantineDropinsSpec,
    step=QuarantineUnknownDropinsStep, convert=_convert, run=run_quarantine_unknown_dropins,
    describe=lambda step: f"quarantine unknown drop-ins of {step.unit.raw}",
    templates=lambda step: (step.unit,),
    template_fields=("unit",),
))
