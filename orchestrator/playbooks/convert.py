"""Validated playbook files → plain :mod:`orchestrator.playbooks.model` objects."""

from __future__ import annotations

import re

from orchestrator.playbooks import model as m
from orchestrator.playbooks import schema as s
from orchestrator.playbooks.placeholders import Template, parse_template
from orchestrator.playbooks.step_schema import StepFile, step_spec
from orchestrator.steps.registry import Step, kinds

_FLAGS = re.MULTILINE


def to_playbook(file: s.PlaybookFile, source: str) -> m.Playbook:
    """Convert a validated (and cross-checked) file; cannot fail on a file that passed both."""
    return m.Playbook(
        name=file.name,
        description=file.description,
        components=tuple(file.applies_to.components),
        kinds=frozenset(file.applies_to.kinds),
        diagnostics=tuple(
            m.Diagnostic(d.name, _templates(d.run), d.timeout_s) for d in file.diagnostics
        ),
        rules=tuple(_rule(r) for r in file.rules),
        strategies=tuple(_strategy(strategy, file.name) for strategy in file.strategies),
        source=source,
    )


def _templates(tokens: list[str]) -> tuple[Template, ...]:
    return tuple(parse_template(t) for t in tokens)


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return None if pattern is None else re.compile(pattern, _FLAGS)


def _rule(rule: s.RuleFile) -> m.Rule:
    return m.Rule(
        diagnostic=rule.when.diagnostic,
        cause=rule.cause,
        confidence=rule.confidence,
        matches=_compile(rule.when.matches),
        not_matches=_compile(rule.when.not_matches),
        exit_status=rule.when.exit_status,
        extract=tuple((var, re.compile(pattern, _FLAGS)) for var, pattern in rule.extract.items()),
    )


def _strategy(strategy: s.StrategyFile, playbook: str) -> m.Strategy:
    return m.Strategy(
        name=strategy.name,
        description=strategy.description,
        for_causes=tuple(strategy.for_causes),
        effectiveness=strategy.effectiveness,
        reboot_required=strategy.reboot_required,
        steps=tuple(to_step(step) for step in strategy.steps),
        playbook=playbook,
        lossy=strategy.lossy,
    )


def to_step(step: StepFile) -> Step:
    """One validated step as the plain object of its kind (generated strategies convert through here
    too, :mod:`orchestrator.repair.generate.proposal`)."""
    kind, spec = step_spec(step)
    converted: Step = kinds()[kind].convert(spec)
    return converted
