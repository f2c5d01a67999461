"""Steps that move offending files aside: ``quarantine`` and ``quarantine_unknown_dropins``.

Quarantine is a move, not a delete: the file stays in the VM under ``/var/lib/vmrepair/quarantine`` for
the report, and only files under the component's own config/unit paths can be moved.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from orchestrator.playbooks.model import QuarantineStep, QuarantineUnknownDropinsStep
from orchestrator.playbooks.placeholders import Template
from orchestrator.repair.context import RepairContext
from orchestrator.repair.paths import component_roots, normalize, within_any
from orchestrator.repair.steps.commands import render_unit
from orchestrator.repair.steps.io import StepIO

#: Where systemd reads administrator drop-ins of a unit (the only place a component's unit_paths name).
DROPIN_PARENT = "/etc/systemd/system"
_MOVABLE = ("file", "symlink")


def render_path(template: Template, ctx: RepairContext, io: StepIO, roots: Sequence[str], *,
                allow_root: bool = False) -> str:
    """Render a path template and require it below one of ``roots`` (lexically), or equal to one with
    ``allow_root`` (restoring /etc/default/sampleapp is fine, moving all of /etc/nginx away is not).

    Raises:
        StepNotApplicableError: a placeholder has no value here.
        RepairStepError: the path is not absolute, or is outside every root: refused.
    """
    raw = template.render(ctx.values())
    path = normalize(raw)
    if path is None:
        raise io.fail(f"refusing {raw!r}: not an absolute path")
    if not within_any(path, roots) or (path in roots and not allow_root):
        raise io.fail(f"refusing {path}: not below the {ctx.component.name} paths "
                      f"({', '.join(roots) or 'none'})")
    return path


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
    if entry.type not in _MOVABLE:
        raise io.not_applicable(f"{path} is a {entry.type}, only files and symlinks are quarantined")
    io.require_real_dirs([path], roots)
    io.quarantine(path, step.quarantine_dir)
    return f"quarantined {path}"


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
    dropins = sorted(e.path for e in entries if e.type in _MOVABLE and e.path.endswith(".conf")
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
