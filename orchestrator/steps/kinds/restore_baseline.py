"""``restore_baseline``: make paths in the VM match the target's baseline (its known-good state).

Files whose content or mode/owner differ are rewritten, missing directories and symlinks recreated,
and files the baseline does not have are quarantined only under the directories the step names
(``quarantine_added``): a file added since the baseline may be the operator's, and removing it is a
change the fix package carries to the target::

    - restore_baseline: {paths: component, quarantine_added: unit_paths}
    - restore_baseline: {paths: ['{offender}']}
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, field_validator

from orchestrator.agent.api import FileEntry
from orchestrator.playbooks.fields import (
    QUARANTINE_ROOT,
    RESTORE_SCOPES,
    AddedRoot,
    RestorePath,
    Strict,
    listify,
)
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.steps.context import BaselineReader, RepairContext, SymlinkBaseline
from orchestrator.steps.io import StepIO
from orchestrator.steps.paths import component_roots, is_within, normalize, within_any
from orchestrator.steps.registry import Step, StepKind, register
from orchestrator.steps.render import render_path

#: Where files in the way of a restore go (the same place as the quarantine step's default).
QUARANTINE_DIR = QUARANTINE_ROOT


class RestoreBaselineSpec(Strict):
    paths: list[RestorePath] = Field(
        min_length=1, description="what to restore from the target's baseline: paths (templates), or "
        "component (config_paths + unit_paths), component_config, component_units")
    quarantine_added: list[AddedRoot] = Field(
        default_factory=list, description="files not in the baseline are quarantined only under these "
        "directories, or all (anywhere in paths), config_paths, unit_paths (the component's); elsewhere "
        "they are left alone")

    _one_path = field_validator("paths", mode="before", json_schema_input_type=str | list[str])(listify)
    _one_root = field_validator("quarantine_added", mode="before",
                                json_schema_input_type=str | list[str])(listify)


@dataclass(frozen=True)
class RestoreBaselineStep(Step):
    #: Keywords for the component's own paths: component, component_config, component_units.
    scopes: tuple[str, ...]
    paths: tuple[Template, ...]
    #: Directories under which files missing from the baseline are quarantined, or the keywords
    #: all (anywhere in the restored paths), config_paths, unit_paths (the component's).
    quarantine_added: tuple[str, ...]
    kind: ClassVar[str] = "restore_baseline"


def _convert(spec: RestoreBaselineSpec) -> RestoreBaselineStep:
    scopes = tuple(p for p in spec.paths if p in RESTORE_SCOPES)
    paths = tuple(parse_template(p) for p in spec.paths if p not in RESTORE_SCOPES)
    return RestoreBaselineStep(scopes, paths, tuple(spec.quarantine_added))


def _describe(step: RestoreBaselineStep) -> str:
    return f"restore {', '.join([*step.scopes, *(t.raw for t in step.paths)])} from the baseline"


def run_restore_baseline(step: RestoreBaselineStep, ctx: RepairContext, io: StepIO) -> str:
    """Restore ``step``'s paths (or the component's) from the baseline.

    Raises:
        StepNotApplicableError: no baseline, no paths, or everything already matches the baseline.
        RepairStepError: a path is outside the component's config/unit paths, a directory on the way is
            a symlink, or a write/move failed.
    """
    baseline = ctx.baseline
    if baseline is None:
        raise io.not_applicable("the target has no baseline to restore from")
    roots = component_roots(ctx.component)
    targets = list(dict.fromkeys(
        [r for scope in step.scopes for r in component_roots(ctx.component, scope)]
        + [render_path(t, ctx, io, roots, allow_root=True) for t in step.paths]))
    if not targets:
        raise io.not_applicable(f"{ctx.component.name} has no paths to restore")
    current = ctx.agent.manifest(targets).by_path()
    _follow_symlinks(targets, current, roots, ctx)
    if not any(baseline.covers(t) or baseline.paths_under(t) for t in targets):
        # Recorded before these paths were watched (an older configuration): it cannot tell what
        # belongs there, and quarantining everything it lacks would remove the service's own files.
        raise io.not_applicable(f"the baseline did not watch {', '.join(targets)} "
                                "(record a new one: `vmrepair baseline --target ...`)")
    wanted = sorted({p for t in targets for p in baseline.paths_under(t)})
    io.require_real_dirs([*wanted, *current], roots)
    changed = [p for p in wanted if _restore(p, baseline, current.get(p), io)]
    wanted_set = set(wanted)
    for path, entry in sorted(current.items()):
        if path in wanted_set or entry.type not in ("file", "symlink"):
            continue
        if not within_any(path, targets):
            continue
        if not baseline.covers(path):
            io.note(f"left {path} in place: the baseline did not watch it")
        elif within_any(path, _quarantine_roots(step, ctx, targets)):
            io.quarantine(path, QUARANTINE_DIR)
            changed.append(path)
        else:
            io.note(f"left {path} in place: not in the baseline, and not under quarantine_added")
    if not changed:
        raise io.not_applicable(f"{', '.join(targets)} already match the baseline")
    return f"restored {len(changed)} path(s) from the baseline: {', '.join(changed[:20])}"


def _quarantine_roots(step: RestoreBaselineStep, ctx: RepairContext, targets: list[str]) -> list[str]:
    """The directories ``quarantine_added`` names, with its keywords expanded."""
    keywords = {"all": targets, "config_paths": list(ctx.component.config_paths),
                "unit_paths": list(ctx.component.unit_paths)}
    return [root for item in step.quarantine_added for root in keywords.get(item, [item])]


def _follow_symlinks(targets: list[str], current: dict[str, FileEntry], roots: tuple[str, ...],
                     ctx: RepairContext) -> None:
    """Add what a symlink target points at (lexically), when that is ours too: nginx blames
    ``sites-enabled/default`` while the edited file is ``sites-available/default``."""
    for target in list(targets):
        entry = current.get(target)
        if entry is None or entry.type != "symlink" or not entry.link:
            continue
        pointed = normalize(posixpath.join(posixpath.dirname(target), entry.link))
        if pointed and within_any(pointed, roots) and pointed not in targets:
            targets.append(pointed)
            current.update(ctx.agent.manifest([pointed]).by_path())


def _restore(path: str, baseline: BaselineReader, cur: FileEntry | None, io: StepIO) -> bool:
    """Make one path match the baseline; True when something changed."""
    meta = baseline.entry(path)
    if meta is None:
        return False
    link = baseline.link(path) if isinstance(baseline, SymlinkBaseline) else None
    if link is not None:
        return _restore_symlink(path, link, cur, io)
    data = baseline.read(path)
    if data is not None:
        return _restore_file(path, data, meta, cur, io)
    return _restore_dir(path, baseline, meta, cur, io)


def _restore_file(path: str, data: bytes, meta: tuple[int, int, int], cur: FileEntry | None,
                  io: StepIO) -> bool:
    mode, uid, gid = meta
    digest = hashlib.sha256(data).hexdigest()
    if cur is not None and cur.type == "file" and cur.sha256 == digest \
            and (cur.mode, cur.uid, cur.gid) == meta:
        return False
    if cur is not None and cur.type == "dir":
        io.note(f"left {path}: a directory where the baseline has a file")
        return False
    if cur is not None and cur.type != "file":
        # Never write through a symlink (it could point anywhere): move it aside first.
        io.quarantine(path, QUARANTINE_DIR)
    expect = cur.sha256 if cur is not None and cur.type == "file" else None
    io.ctx.agent.write_file(path, data, mode=mode, uid=uid, gid=gid, expect_sha256=expect)
    io.note(f"restored {path} ({len(data)} bytes, mode {mode:o}, {uid}:{gid})")
    return True


def _restore_symlink(path: str, link: str, cur: FileEntry | None, io: StepIO) -> bool:
    if cur is not None and cur.type == "symlink" and cur.link == link:
        return False
    if cur is not None and cur.type == "dir":
        io.note(f"left {path}: a directory where the baseline has a symlink")
        return False
    if cur is not None:
        io.quarantine(path, QUARANTINE_DIR)
    io.run(["ln", "-s", "--", link, path])
    io.note(f"restored symlink {path} -> {link}")
    return True


def _restore_dir(path: str, baseline: BaselineReader, meta: tuple[int, int, int],
                 cur: FileEntry | None, io: StepIO) -> bool:
    # Not a regular file or symlink: a directory, or a file the baseline kept only as a placeholder.
    # Only a path with children in the baseline is surely a directory; placeholders are never touched.
    is_dir = any(p != path and is_within(p, path) for p in baseline.paths_under(path))
    mode, uid, gid = meta
    if cur is None and is_dir:
        io.run(["install", "-d", "-m", f"{mode:o}", "-o", str(uid), "-g", str(gid), "--", path])
        return True
    if cur is None:
        io.note(f"cannot restore {path}: the baseline holds no content for it")
        return False
    if cur.type == "dir" and (cur.mode, cur.uid, cur.gid) != meta:
        io.run(["chmod", f"{mode:o}", "--", path])
        io.run(["chown", f"{uid}:{gid}", "--", path])
        return True
    return False


KIND = register(StepKind(
    name="restore_baseline", order=30, spec=RestoreBaselineSpec, step=RestoreBaselineStep,
    convert=_convert, run=run_restore_baseline, describe=_describe,
    templates=lambda step: step.paths,
    template_fields=("paths",),
    needs_baseline=True,
))
