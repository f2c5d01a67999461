"""Plain typed playbooks, converted from the validated files (:mod:`orchestrator.playbooks.schema`).

Regexes are compiled and templates parsed once here; the rest of the pipeline never sees pydantic.
A strategy's steps are the plain objects of their kinds (:mod:`orchestrator.steps.kinds`), typed by
their common base :class:`orchestrator.steps.registry.Step`; import a step class from its kind's
module (a new kind needs no entry here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.model import IssueKind
from orchestrator.playbooks.placeholders import Template
from orchestrator.steps.registry import Step

__all__ = ["UNKNOWN_CAUSE", "WILDCARD", "Diagnostic", "Playbook", "Rule", "Strategy"]

#: The cause of a diagnosis no rule explains; only ``for_causes: ["*"]`` strategies apply to it.
UNKNOWN_CAUSE = "unknown"
WILDCARD = "*"


@dataclass(frozen=True)
class Diagnostic:
    name: str
    argv: tuple[Template, ...]
    timeout_s: float


@dataclass(frozen=True)
class Rule:
    diagnostic: str
    cause: str
    confidence: float
    matches: re.Pattern[str] | None = None
    not_matches: re.Pattern[str] | None = None
    exit_status: int | None = None
    #: (variable, regex with one group) searched in the same diagnostic's output.
    extract: tuple[tuple[str, re.Pattern[str]], ...] = ()


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    for_causes: tuple[str, ...]
    effectiveness: float
    reboot_required: bool
    steps: tuple[Step, ...]
    #: Name of the playbook that defines it.
    playbook: str
    #: Discards data: ranked after every strategy that does not.
    lossy: bool = False

    @property
    def is_wildcard(self) -> bool:
        return self.for_causes == (WILDCARD,)


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    components: tuple[str, ...]
    kinds: frozenset[IssueKind]
    diagnostics: tuple[Diagnostic, ...]
    rules: tuple[Rule, ...]
    strategies: tuple[Strategy, ...]
    #: The file it was loaded from (for messages).
    source: str

    def applies_to(self, component: str, kind: IssueKind) -> bool:
        return kind in self.kinds and (self.components == (WILDCARD,) or component in self.components)
