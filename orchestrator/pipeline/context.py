"""What every stage of one repair run shares (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.components.config import WatchConfig
from orchestrator.detect.detector import Detector
from orchestrator.pipeline.notices import RunNotices
from orchestrator.pipeline.options import Resolved
from orchestrator.sandbox.protocol import Sandbox, SandboxFactory
from orchestrator.session.store import Session
from orchestrator.targets.spec import TargetSpec
from orchestrator.transport.base import Transport


@dataclass(frozen=True)
class RunContext:
    app: App
    spec: TargetSpec
    session: Session
    transport: Transport      # to the target
    agent: RemoteAgent        # on the target
    probes: Detector          # on the target
    options: Resolved
    #: Makes the troubleshooting environment of one attempt round.
    new_sandbox: SandboxFactory
    #: Probes that passed on the target at detection.
    passing: frozenset[str] = frozenset()
    #: What the run tells people (:attr:`notify`); None: through the app's hub, made on first use.
    notices: RunNotices | None = None

    @property
    def notify(self) -> RunNotices:
        notices = self.notices
        if notices is None:
            # Frozen, yet one object per run: it collects the run's escalations for the summary.
            notices = run_notices(self.app, self.session)
            object.__setattr__(self, "notices", notices)
        return notices

    @property
    def watch(self) -> WatchConfig:
        """The watch resolved against this target (discovered and configured components)."""
        return self.probes.watch


def run_notices(app: App, session: Session) -> RunNotices:
    """The notices of the run of ``session``, through the app's notification hub."""
    return RunNotices(app.notifier, session.target, session.id, Path(session.dir) / "report.md",
                      app.settings.notify.troubleshooting)


def vm_sandbox(app: App) -> SandboxFactory:
    """The real troubleshooting VM (libvirt is imported only when a round needs one: a daemon that only
    repairs in place never loads it)."""

    def make(session: Session) -> Sandbox:
        from orchestrator.sandbox.vm import TroubleshootingVm

        return TroubleshootingVm(app, session)

    return make
