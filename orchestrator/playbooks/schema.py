"""The playbook file format, validated once at the edge (pydantic, ``extra="forbid"``, frozen).

A playbook says which issues it applies to, which read-only diagnostics to run in the troubleshooting VM,
which rules turn their output into a cause, and which strategies (lists of steps) repair that cause::

    name: nginx-config
    description: ...
    applies_to: {components: [nginx], kinds: [config_invalid, unit_failed]}
    diagnostics:
      - {name: nginx-test, run: [nginx, -t], timeout_s: 20}
    rules:
      - when: {diagnostic: nginx-test, matches: 'test failed'}
        cause: config_invalid
        confidence: 0.95
        extract: {offender: ' in (/etc/nginx/\\S+?):\\d+'}
    strategies:
      - name: nginx-restore-offender
        description: ...
        for_causes: [config_invalid]
        effectiveness: 0.9
        steps:
          - restore_baseline: {paths: ['{offender}']}
          - unit: {name: '{unit}', action: restart}

A step is a mapping with exactly one key, its kind (see :mod:`orchestrator.playbooks.step_schema`).
Cross-references (rule → diagnostic, strategy → cause, placeholder → extract variable) are checked by
:mod:`orchestrator.playbooks.checks`, which can name the exact key path.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from orchestrator.model import IssueKind
from orchestrator.playbooks.fields import (
    CAUSE_PATTERN,
    COMPONENT_PATTERN,
    VAR_PATTERN,
    Argv,
    Name,
    Regex,
    Score,
    Strict,
)
from orchestrator.playbooks.step_schema import StepFile


class AppliesToFile(Strict):
    components: list[Annotated[str, Field(pattern=COMPONENT_PATTERN)]] = Field(
        min_length=1, description='component names, or ["*"] for every component')
    kinds: list[IssueKind] = Field(min_length=1)

    @model_validator(mode="after")
    def _star_alone(self) -> AppliesToFile:
        if "*" in self.components and len(self.components) > 1:
            raise ValueError('components: "*" must be the only entry')
        return self


class DiagnosticFile(Strict):
    name: Name
    run: Argv = Field(description="argv (never a shell string); placeholders {component} {subject} {unit}")
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class WhenFile(Strict):
    diagnostic: Name
    matches: Regex | None = Field(default=None, description="re.search over stdout+stderr (MULTILINE)")
    not_matches: Regex | None = None
    exit_status: int | None = Field(default=None, ge=0, le=255)

    @model_validator(mode="after")
    def _has_condition(self) -> WhenFile:
        if self.matches is None and self.not_matches is None and self.exit_status is None:
            raise ValueError("needs at least one of matches, not_matches, exit_status")
        return self


class RuleFile(Strict):
    when: WhenFile
    cause: Annotated[str, Field(pattern=CAUSE_PATTERN)]
    confidence: Score
    extract: dict[Annotated[str, Field(pattern=VAR_PATTERN)], Regex] = Field(
        default_factory=dict, description="variable -> regex with exactly one group, searched in the "
        "same diagnostic's output")

    @model_validator(mode="after")
    def _one_group(self) -> RuleFile:
        for var, pattern in self.extract.items():
            if re.compile(pattern).groups != 1:
                raise ValueError(f"extract.{var}: the regex must have exactly one capturing group")
        if self.cause == "unknown":
            raise ValueError('cause: "unknown" is reserved for "no rule matched"')
        return self


class StrategyFile(Strict):
    name: Name
    description: str = Field(min_length=1, max_length=2000)
    for_causes: list[Annotated[str, Field(pattern=r"^([a-z][a-z0-9_]{0,47}|\*)$")]] = Field(
        min_length=1, description='causes this strategy repairs, or ["*"] for any cause (half weight)')
    effectiveness: Score
    reboot_required: bool = False
    lossy: bool = Field(default=False, description=(
        "the strategy discards data (e.g. truncates a log); lossy strategies are always tried after "
        "every non-lossy one, whatever their scores"))
    steps: list[StepFile] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _star_alone(self) -> StrategyFile:
        if "*" in self.for_causes and len(self.for_causes) > 1:
            raise ValueError('for_causes: "*" must be the only entry')
        return self


class PlaybookFile(Strict):
    """One ``playbooks/*.yaml`` file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, title="vmrepair playbook")

    name: Name
    description: str = Field(min_length=1, max_length=2000)
    applies_to: AppliesToFile
    diagnostics: list[DiagnosticFile] = Field(default_factory=list, max_length=50)
    rules: list[RuleFile] = Field(default_factory=list, max_length=100)
    strategies: list[StrategyFile] = Field(min_length=1, max_length=50)
