"""Boot diagnostics: at start-up, check every watched component is present and healthy, score its
dependencies, and (with ``remediate``) repair broken vital components at once. See :mod:`.diagnose`
for the order of remediations, :mod:`.dependencies` for the score."""

from __future__ import annotations

from orchestrator.bootdiag.diagnose import diagnose_components
from orchestrator.bootdiag.result import (
    Action,
    ActionKind,
    ActionStatus,
    BootDiagnosis,
    ComponentDiagnosis,
    ComponentState,
    DependencyScore,
    Finding,
)

__all__ = ["Action", "ActionKind", "ActionStatus", "BootDiagnosis", "ComponentDiagnosis",
           "ComponentState", "DependencyScore", "Finding", "diagnose_components"]
