"""What every stage of one repair run shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.capture.snapshot import Capture
from orchestrator.model import Component, Issue, SessionStatus
from orchestrator.pipeline.probes import DetectorProbes
from orchestrator.session.store import Session
from orchestrator.targets.spec import TargetSpec
from orchestrator.transport.base import Transport

if TYPE_CHECKING:
    # Only a type here: importing it would load libvirt, which a daemon that repairs in place never needs.
    from orchestrator.pipeline.run import RunOptions
    from orchestrator.sandbox.vm import TroubleshootingVm


@dataclass(frozen=True)
class RunContext:
    app: App
    spec: TargetSpec
    session: Session
    transport: Transport      # to the target
    agent: RemoteAgent        # on the target
    probes: DetectorProbes    # on the target
    options: RunOptions
    #: Which apply attempt (strategy on the target) this is for the current issue, from 1.
    attempt: int = 1


@dataclass(frozen=True)
class Sandboxed:
    """The troubleshooting VM of one issue with what was imported into it."""

    sandbox: TroubleshootingVm
    probes: DetectorProbes
    capture: Capture
    components: list[Component]


def component_result(issue: Issue, status: SessionStatus, summary: str, **extra: Any) -> dict[str, Any]:
    """What every stage returns for one issue: the run's ``components`` entry (JSON, the report)."""
    return {"component": issue.component, "issue": issue.id, "status": str(status), "summary": summary,
            **extra}
