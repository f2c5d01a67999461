"""The outcome of a detection run, and the order issues are reported (and repaired) in.

Issues are sorted by, in turn:

1. severity: critical, then warning;
2. host-wide issues (disk, inodes, memory, kernel, system paths and modes, the manager's state)
   before component issues: a full disk makes config tests, units and endpoints fail, so it is the
   likelier root cause;
3. component, in the order of the watch config;
4. within a component, causes before symptoms: DISK_FULL, INODES_FULL, MEMORY_PRESSURE,
   KERNEL_FAULT, PACKAGE_BROKEN (a packaged file gone is why a config link dangles), PATH_MISSING,
   PERMISSIONS (a data directory the unit cannot write), CONFIG_INVALID, LOG_CORRUPT, then
   UNIT_FAILED, UNIT_INACTIVE, PORT_DOWN, HTTP_DOWN, SYSTEM_DEGRADED (a summary of failed units);
   BOOT_CONFIG last (it is about the next boot: nothing running follows from it);
5. the order the probes ran in.

Deduplication rule: when a component's config test fails, its unit and HTTP issues are still reported
(each is a fact a fix must clear), but the config issue sorts first and each of them carries
``evidence["suspected_cause"] = "config:<component>"`` so triage can treat them as one fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.detect.common import HOST_COMPONENT
from orchestrator.model import Issue, IssueKind, ProbeResult, Severity

_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
#: Every kind has a rank (a test checks): causes before symptoms. Memory, the kernel and the paths
#: every service needs come right after disk space; SYSTEM_DEGRADED only sums up failed units, so it
#: follows the unit kinds.
_KIND_RANK = {
    IssueKind.DISK_FULL: 0, IssueKind.INODES_FULL: 1, IssueKind.MEMORY_PRESSURE: 2,
    IssueKind.KERNEL_FAULT: 3, IssueKind.PACKAGE_BROKEN: 4, IssueKind.PATH_MISSING: 5,
    IssueKind.PERMISSIONS: 6, IssueKind.CONFIG_INVALID: 7, IssueKind.LOG_CORRUPT: 8,
    IssueKind.UNIT_FAILED: 9, IssueKind.UNIT_INACTIVE: 10, IssueKind.PORT_DOWN: 11,
    IssueKind.HTTP_DOWN: 12, IssueKind.SYSTEM_DEGRADED: 13, IssueKind.BOOT_CONFIG: 14,
}
#: Kinds that a failing config test of the same component plausibly explains.
_CONFIG_SYMPTOMS = frozenset({IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.HTTP_DOWN})


def result_as_dict(result: ProbeResult) -> dict[str, object]:
    return {
        "probe": result.probe, "component": result.component, "ok": result.ok,
        "kind": str(result.kind), "severity": str(result.severity), "subject": result.subject,
        "summary": result.summary, "evidence": dict(result.evidence),
        "unavailable": result.is_unavailable,
    }


def build_issues(results: Sequence[ProbeResult], component_order: Sequence[str]) -> tuple[Issue, ...]:
    """Failed, available results → issues in the order described in the module docstring."""
    failing = [(i, r) for i, r in enumerate(results) if not r.ok and not r.is_unavailable]
    position = {name: i for i, name in enumerate(component_order)}
    broken_config = {r.component: r.probe for _, r in failing if r.kind is IssueKind.CONFIG_INVALID}

    def key(item: tuple[int, ProbeResult]) -> tuple[int, int, int, int, int]:
        index, r = item
        return (_SEVERITY_RANK[r.severity], 0 if r.component == HOST_COMPONENT else 1,
                position.get(r.component, len(position)), _KIND_RANK[r.kind], index)

    issues = []
    for _, result in sorted(failing, key=key):
        issue = Issue.from_result(result)
        cause = broken_config.get(result.component)
        if cause is not None and result.kind in _CONFIG_SYMPTOMS:
            issue = dataclasses.replace(issue, evidence={**issue.evidence, "suspected_cause": cause})
        issues.append(issue)
    return tuple(issues)


@dataclass(frozen=True)
class DetectionReport:
    """Every probe result of a run, and the issues made of the failed ones (sorted)."""

    results: tuple[ProbeResult, ...]
    issues: tuple[Issue, ...]

    @classmethod
    def from_results(
        cls, results: Sequence[ProbeResult], component_order: Sequence[str]
    ) -> DetectionReport:
        return cls(tuple(results), build_issues(results, component_order))

    @property
    def has_issues(self) -> bool:
        return bool(self.issues)

    @property
    def critical_issues(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.CRITICAL)

    @property
    def by_component(self) -> tuple[tuple[Issue, tuple[Issue, ...]], ...]:
        """One entry per component with issues: its first issue in report order (the most severe,
        then the likeliest cause) and the others as related evidence of the same fault."""
        groups: dict[str, list[Issue]] = {}
        for issue in self.issues:
            groups.setdefault(issue.component, []).append(issue)
        return tuple((items[0], tuple(items[1:])) for items in groups.values())

    @property
    def unavailable(self) -> tuple[ProbeResult, ...]:
        """Probes that could not run (neither passed nor failed)."""
        return tuple(r for r in self.results if r.is_unavailable)

    def as_dict(self) -> dict[str, object]:
        """JSON-able: ``{"issues": [...], "results": [...]}``."""
        return {"issues": [i.as_dict() for i in self.issues],
                "results": [result_as_dict(r) for r in self.results]}
