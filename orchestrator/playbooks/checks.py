"""Cross-reference checks pydantic cannot place at a key path: rule → diagnostic, strategy → cause,
placeholder → extract variable, unique names. Each problem is reported as ``key.path: message``."""

from __future__ import annotations

from collections.abc import Iterator

from orchestrator.playbooks.placeholders import BUILTINS, parse_template
from orchestrator.playbooks.schema import PlaybookFile, StrategyFile
from orchestrator.playbooks.step_schema import StepFile, step_spec
from orchestrator.steps.registry import kinds


def problems(playbook: PlaybookFile) -> list[str]:
    """Every cross-reference problem of one playbook file, as ``key.path: message`` lines."""
    found: list[str] = []
    diagnostics = _check_diagnostics(playbook, found)
    causes, variables = _check_rules(playbook, diagnostics, found)
    names: set[str] = set()
    for i, strategy in enumerate(playbook.strategies):
        if strategy.name in names:
            found.append(f"strategies[{i}].name: duplicate strategy {strategy.name!r}")
        names.add(strategy.name)
        found.extend(_check_strategy(f"strategies[{i}]", strategy, causes, BUILTINS | frozenset(variables)))
    return found


def _check_diagnostics(playbook: PlaybookFile, found: list[str]) -> set[str]:
    names: set[str] = set()
    for i, diag in enumerate(playbook.diagnostics):
        if diag.name in names:
            found.append(f"diagnostics[{i}].name: duplicate diagnostic {diag.name!r}")
        names.add(diag.name)
        for j, token in enumerate(diag.run):
            # Diagnostics run before any rule, so only built-ins can fill them.
            for name in sorted(parse_template(token).names - BUILTINS):
                found.append(f"diagnostics[{i}].run[{j}]: unknown placeholder {{{name}}} "
                             f"(diagnostics may use {_names(BUILTINS)})")
    return names


def _check_rules(
    playbook: PlaybookFile, diagnostics: set[str], found: list[str]
) -> tuple[set[str], set[str]]:
    causes: set[str] = set()
    variables: set[str] = set()
    for i, rule in enumerate(playbook.rules):
        if rule.when.diagnostic not in diagnostics:
            found.append(f"rules[{i}].when.diagnostic: unknown diagnostic {rule.when.diagnostic!r} "
                         f"(declared: {_names(diagnostics) or 'none'})")
        causes.add(rule.cause)
        for var in rule.extract:
            if var in BUILTINS:
                found.append(f"rules[{i}].extract.{var}: {var!r} is a built-in placeholder")
            variables.add(var)
    return causes, variables


def _check_strategy(
    where: str, strategy: StrategyFile, causes: set[str], allowed: frozenset[str]
) -> list[str]:
    found = []
    for j, cause in enumerate(strategy.for_causes):
        if cause != "*" and cause not in causes:
            found.append(f"{where}.for_causes[{j}]: no rule of this playbook yields cause {cause!r} "
                         f"(rules yield: {_names(causes) or 'none'})")
    for j, step in enumerate(strategy.steps):
        for key, token in _templates(step):
            for name in sorted(parse_template(token).names - allowed):
                found.append(f"{where}.steps[{j}].{key}: unknown placeholder {{{name}}} "
                             f"(known: {_names(allowed)})")
    return found


def _templates(step: StepFile) -> Iterator[tuple[str, str]]:
    """(key path inside the step, template text) for every template of a step."""
    # The kind names its template fields; the rest are literals checked by the schema.
    kind, spec = step_spec(step)
    for field in kinds()[kind].template_fields:
        value = getattr(spec, field)
        if isinstance(value, list):
            for k, item in enumerate(value):
                yield f"{kind}.{field}[{k}]", item
        elif isinstance(value, str):
            yield f"{kind}.{field}", value


def _names(names: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names))
