"""Rendering a step's templates into the values it may act on: a unit name, or a path below a root."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.playbooks.placeholders import UNIT_RE, Template
from orchestrator.steps.context import RepairContext
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import normalize, within_any


def render_unit(template: Template, ctx: RepairContext, io: StepIO) -> str:
    """The unit a step names, checked.

    Raises:
        StepNotApplicableError: a placeholder has no value (a component without units).
        RepairStepError: the rendered value is not a unit name.
    """
    unit = template.render(ctx.values())
    if not UNIT_RE.match(unit) or unit.startswith("-"):
        raise io.fail(f"{unit!r} is not a unit name")
    return unit


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
