"""Validated playbook files → plain :mod:`orchestrator.playbooks.model` objects."""

from __future__ import annotations

import re

from orchestrator.playbooks import model as m
from orchestrator.playbooks import schema as s
from orchestrator.playbooks import step_schema as st
from orchestrator.playbooks.fields import COMPONENT_SCOPE, RESTORE_SCOPES
from orchestrator.playbooks.placeholders import Template, parse_template

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
        steps=tuple(_step(step) for step in strategy.steps),
        playbook=playbook,
        lossy=strategy.lossy,
    )


def _step(step: st.StepFile) -> m.Step:  # noqa: PLR0911 - one return per step kind reads best
    match step:
        case st.RunStepFile(run=spec):
            return m.RunStep(_templates(spec.argv), spec.timeout_s, frozenset(spec.ok_exit))
        case st.UnitStepFile(unit=spec):
            return m.UnitStep(spec.action, None if spec.name is None else parse_template(spec.name))
        case st.RestoreBaselineStepFile(restore_baseline=spec):
            scopes = tuple(p for p in spec.paths if p in RESTORE_SCOPES)
            paths = _templates([p for p in spec.paths if p not in RESTORE_SCOPES])
            return m.RestoreBaselineStep(scopes, paths, tuple(spec.quarantine_added))
        case st.RestoreConffileStepFile(restore_conffile=spec):
            return m.RestoreConffileStep(spec.package, _templates(spec.paths))
        case st.QuarantineStepFile(quarantine=spec):
            return m.QuarantineStep(parse_template(spec.path), tuple(spec.within), spec.quarantine_dir)
        case st.QuarantineDropinsStepFile(quarantine_unknown_dropins=spec):
            return m.QuarantineUnknownDropinsStep(parse_template(spec.unit), spec.quarantine_dir)
        case st.JsonlRepairStepFile(jsonl_repair=spec):
            return m.JsonlRepairStep(COMPONENT_SCOPE in spec.paths,
                                     _templates([p for p in spec.paths if p != COMPONENT_SCOPE]))
        case st.ReduceLogsStepFile(reduce_logs=spec):
            return m.ReduceLogsStep(spec.min_bytes, spec.method, spec.limit)
        case st.WaitActiveStepFile(wait_active=spec):
            return m.WaitActiveStep(parse_template(spec.unit), spec.timeout_s, spec.settle_s)
        case st.FstabEntryStepFile(fstab_entry=spec):
            return m.FstabEntryStep(spec.action, parse_template(spec.path))
    raise AssertionError(f"unhandled step {step!r}")  # pragma: no cover - the schema is exhaustive
