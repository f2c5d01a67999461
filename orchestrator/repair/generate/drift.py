"""How the target's captured state differs from its newest healthy baseline, path by path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from orchestrator.agent.api import FileEntry
from orchestrator.repair.generate.situation import Situation
from orchestrator.steps.paths import within_any

Change = Literal["content", "meta", "deleted", "added"]


@dataclass(frozen=True)
class Drift:
    """One path that differs: its content (or type, or link target), only its mode/owner, or it was
    deleted or added since the baseline."""

    path: str
    change: Change
    now: FileEntry | None
    then: FileEntry | None

    @property
    def mtime(self) -> float:
        """When it changed, as far as the target says (a deleted path: when the baseline saw it)."""
        entry = self.now or self.then
        return entry.mtime if entry is not None else 0.0

    def describe(self) -> str:
        if self.change == "deleted":
            return f"{self.path} was deleted since the baseline"
        if self.change == "added":
            return f"{self.path} was added since the baseline"
        if self.now is None or self.then is None:   # only "deleted" and "added" lack one
            return self.path
        if self.change == "meta":
            return (f"{self.path} is {_meta(self.now)}, the baseline had {_meta(self.then)}")
        return f"{self.path} changed since the baseline ({_what(self.now, self.then)})"


def _meta(entry: FileEntry) -> str:
    return f"{entry.mode & 0o7777:04o} {entry.owner}:{entry.group}"


def _what(now: FileEntry, then: FileEntry) -> str:
    if now.type != then.type:
        return f"now a {now.type}, was a {then.type}"
    if now.type == "symlink":
        return "points elsewhere"
    return "content differs"


def _change(now: FileEntry | None, then: FileEntry | None) -> Change | None:
    if now is None:
        return "deleted"
    if then is None:
        return "added"
    if now.type != then.type or now.sha256 != then.sha256 or now.link != then.link:
        return "content"
    if (now.mode, now.uid, now.gid) != (then.mode, then.uid, then.gid):
        return "meta"
    return None


def drift(situation: Situation, roots: Sequence[str]) -> list[Drift]:
    """Every path under ``roots`` that differs between the capture and the baseline ([] without a
    baseline). Only paths the capture covered count: a baseline path outside it says nothing, nor
    does one the capture left out as ignored (a baseline older than the ignore entry still has it).
    Paths inside a directory deleted since the baseline are left out: the directory stands for them."""
    if situation.baseline is None:
        return []
    now, then = situation.now, situation.recorded
    covered, excluded = situation.captured, situation.excluded
    found: list[Drift] = []
    for path in sorted({p for p in (*now, *then) if within_any(p, roots) and within_any(p, covered)
                        and not within_any(p, excluded)}):
        change = _change(now.get(path), then.get(path))
        if change is not None:
            found.append(Drift(path, change, now.get(path), then.get(path)))
    gone = [d.path for d in found if d.change == "deleted"]
    return [d for d in found if not any(d.path != g and within_any(d.path, [g]) for g in gone)]
