"""Family ``revert``: put back what changed since the newest healthy baseline.

Evidence: the capture (the target now) against the baseline, over the component's config and unit
paths (where ``restore_baseline`` may act). One strategy per differing path, at most
:data:`MAX_PATHS`, the paths the issue's evidence names first, then the most recently modified; then
one for the whole component. A path whose content is intact but whose mode or owner changed gets
``set_meta`` (the smaller change); files added since the baseline are left to the ``config`` family
(quarantine) and to the whole-component revert, which quarantines them under the include directories.
"""

from __future__ import annotations

from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups
from orchestrator.repair.generate.drift import Drift, drift
from orchestrator.repair.generate.proposal import Proposal, RawStep, literal
from orchestrator.repair.generate.situation import Situation, quote
from orchestrator.steps.paths import component_roots

FAMILY = "revert"
MAX_PATHS = 5
#: Faults a changed file can cause (not disk space, a corrupt log, memory or the kernel).
KINDS = frozenset({IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.CONFIG_INVALID,
                   IssueKind.HTTP_DOWN, IssueKind.PORT_DOWN, IssueKind.PERMISSIONS, IssueKind.PATH_MISSING,
                   IssueKind.BOOT_CONFIG})
#: Directories whose files a service loads by glob: a file added there is loaded without anyone
#: naming it, so an added file there is a suspect (``conf.d``, ``sites-enabled``, ``x.service.d``).
INCLUDE_SUFFIXES = (".d", "-enabled")


def is_include_dir(path: str) -> bool:
    return path.rstrip("/").endswith(INCLUDE_SUFFIXES)


def plausible_first(situation: Situation, found: list[Drift]) -> list[Drift]:
    """The paths the evidence names first, then the most recently modified."""
    return sorted(found, key=lambda d: (not situation.names(d.path), -d.mtime, d.path))


def meta_step(path: str, then_mode: int, owner: str, group: str) -> RawStep:
    return {"set_meta": {"path": literal(path), "mode": f"{then_mode & 0o7777:04o}", "owner": owner,
                         "group": group}}


def _one(situation: Situation, item: Drift, rank: int) -> Proposal:
    named = situation.names(item.path)
    if item.change == "meta" and item.then is not None:
        then = item.then
        change: tuple[RawStep, ...] = (meta_step(item.path, then.mode, then.owner, then.group),)
        action, cause = "revert-meta", "meta_changed"
    else:
        change = ({"restore_baseline": {"paths": [literal(item.path)]}},)
        action, cause = "revert-file", "file_changed" if item.change == "content" else "file_deleted"
    why = "the issue's evidence names it" if named else "changed most recently"
    return Proposal(
        FAMILY, action, item.path,
        f"Revert {quote(item.path)} to the baseline: {quote(item.describe())} ({why}).",
        change + followups.after_change(situation.component, [item.path]),
        effectiveness=0.8, cause=cause,
        # Named by the evidence: strong; otherwise each later candidate a little less likely.
        confidence=0.9 if named else max(0.3, 0.7 - 0.05 * rank),
    )


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS or situation.baseline is None:
        return []
    roots = component_roots(situation.component)
    every = drift(situation, roots)
    if not every:
        return []
    found = [d for d in every if d.change != "added"]
    proposals = [_one(situation, item, rank)
                 for rank, item in enumerate(plausible_first(situation, found)[:MAX_PATHS])]
    proposals.append(_whole(situation, roots, found))
    return proposals


def _whole(situation: Situation, roots: tuple[str, ...], found: list[Drift]) -> Proposal:
    component = situation.component
    includes = sorted({p for p, e in situation.now.items() if e.type == "dir" and is_include_dir(p)
                       and any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)})
    listed = ", ".join(quote(d.path) for d in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3
                                                             else "")
    return Proposal(
        FAMILY, "revert-component", component.name,
        f"Restore every config and unit path of {component.name} from the baseline "
        f"({listed or 'files added since'}), quarantining files added since the baseline in include "
        f"directories and unit drop-in directories.",
        ({"restore_baseline": {"paths": ["component"],
                               # Not templates: plain absolute paths.
                               "quarantine_added": ["unit_paths", *includes]}},
         *followups.after_change(component, [*component.unit_paths, *(d.path for d in found)])),
        effectiveness=0.7, cause="component_changed", confidence=0.6,
    )
