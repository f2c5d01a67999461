"""`vmrepair doctor --target T`: boot diagnostics of a target's watched components.

The orchestrator's own checks (:mod:`.checks`) ask whether vmrepair can work here; these ask whether
the target's services are present and healthy, through :func:`orchestrator.bootdiag.diagnose_components`
with the target's newest baseline for the restore remediation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi
from orchestrator.audit.sink import AuditSink
from orchestrator.baseline import Baseline, load_latest_baseline
from orchestrator.bootdiag import BootDiagnosis, diagnose_components
from orchestrator.bootdiag.verdict import judge_diagnosis
from orchestrator.config.settings import Settings
from orchestrator.errors import StateError
from orchestrator.targets.spec import TargetSpec
from orchestrator.transport.base import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetDoctorReport:
    target: str
    diagnosis: BootDiagnosis
    #: The baseline a restore would use: its name, "none", or why it could not be used.
    baseline: str

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "baseline": self.baseline, **self.diagnosis.as_dict()}


def diagnose_target(
    settings: Settings, spec: TargetSpec, transport: Transport, agent: AgentApi, *, remediate: bool,
    audit: AuditSink, sleep: Callable[[float], None] = time.sleep,
) -> TargetDoctorReport:
    """Diagnose the components of ``settings.watch`` on the target (and repair vital ones with
    ``remediate``). A corrupt baseline does not stop the diagnosis: the restore step is then skipped
    and the report says why.

    Raises:
        ConfigError: the target's slug is not a safe directory name.
        TransportError: the target cannot be reached.
        AuditError: the audit trail cannot be written.
    """
    baseline: Baseline | None = None
    note = "none"
    try:
        baseline = load_latest_baseline(settings, spec.slug)
    except StateError as exc:
        log.warning("baseline of %s unusable: %s", spec, exc.message)
        note = f"unusable: {exc.message}"
    if baseline is not None:
        note = baseline.info.name
    diagnosis = diagnose_components(transport, agent, settings.watch, baseline=baseline, audit=audit,
                                    remediate=remediate, sleep=sleep)
    # What the daemon would make of each component: its severity, and may it restart it blindly.
    return TargetDoctorReport(str(spec), judge_diagnosis(diagnosis, settings.health), note)
