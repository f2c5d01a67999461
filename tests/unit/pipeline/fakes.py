"""A scripted world for the driver's unit tests: a fake sandbox and stage functions that answer what
the test says, while the attempt budget, transactions and session evidence are the real ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.agent.api import Manifest
from orchestrator.agent.client import RemoteAgent
from orchestrator.app import App
from orchestrator.boot.critical import RebootAnalysis
from orchestrator.boot.host import RebootResult
from orchestrator.capture.snapshot import Capture
from orchestrator.config.settings import Settings
from orchestrator.detect.detector import Detector
from orchestrator.errors import LayerError
from orchestrator.model import Issue
from orchestrator.pipeline.attempts import Diagnosed
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.driver import Stages
from orchestrator.pipeline.options import Resolved, RunOptions
from orchestrator.pipeline.triage import TriageDecision
from orchestrator.pipeline.values import (
    Applied,
    Built,
    RebootEnd,
    RebootStep,
    Refused,
    Reproduction,
    Winner,
    Workbench,
)
from orchestrator.reboot.executor import RebootOutcome
from orchestrator.reboot.verify import VerifyPlan
from orchestrator.sandbox.protocol import ImportReport
from orchestrator.session.store import new_session
from orchestrator.state.transactions import TransactionStore
from orchestrator.targets.spec import parse_target
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import FakeAgent


@dataclass
class Ready:
    boot_seconds: float = 0.1
    is_warm: bool = True


class FakeSandbox:
    """Implements :class:`orchestrator.sandbox.protocol.Sandbox` in memory and records what was asked."""

    def __init__(self, name: str = "trb-fake") -> None:
        self.name = name
        self.template = "debian-12"
        self.calls: list[str] = []
        self._transport = FakeTransport()
        self._agent = FakeAgent()

    def start(self) -> None:
        if "start" not in self.calls:   # idempotent, as the protocol says
            self.calls.append("start")

    def wait_ready(self) -> Ready:
        self.calls.append("wait_ready")
        return Ready()

    def use_layer(self, plan: Any, target: Any, facts: Any) -> Any:
        self.calls.append("use_layer")
        raise LayerError("no layers in the fake sandbox", step="build")

    def use_template(self) -> None:
        """Never on a layer (use_layer refuses): nothing to leave, nothing recorded."""

    def use_release(self, suite: str) -> str:
        self.calls.append(f"use_release:{suite}")
        raise LayerError("no releases in the fake sandbox", step="release")

    def import_capture(self, capture: Capture, components: list[Any]) -> ImportReport:
        self.calls.append("import")
        return ImportReport(None, None)

    def fill_disk_to(self, used_pct: float) -> None:
        self.calls.append(f"fill:{used_pct:g}")

    def snapshot(self) -> None:
        self.calls.append("snapshot")

    def revert(self) -> None:
        self.calls.append("revert")

    def reboot(self) -> RebootResult:
        self.calls.append("reboot")
        return RebootResult("a", "b", 1.0)

    @property
    def transport(self) -> FakeTransport:
        return self._transport

    @property
    def agent(self) -> FakeAgent:
        return self._agent

    def destroy(self) -> None:
        self.calls.append("destroy")


def empty_capture(tmp: Path) -> Capture:
    return Capture(tmp / "capture.tar", (), Manifest((), ()), ())


@dataclass
class Script:
    """What each stage answers, round by round, and the order in which the driver called them.

    ``winners``: per round, the strategy that validates (None: none does). ``applies``: per round, the
    apply status (``applied``, ``rolled_back``, ``aborted`` ...). ``reboots``: per round that needs a
    reboot, how it ends (a RebootEnd, or a RebootOutcome status such as ``rolled_back``).
    """

    tmp: Path
    in_place: bool | None = None            # None: triage escalates; else what the restart achieves
    reproduced: bool = True
    #: Reproduction.reason when not reproduced ("environment differs: ...").
    not_reproduced_reason: str = ""
    winners: list[str | None] = field(default_factory=lambda: ["s1"])
    refuse: str | None = None
    operations: int = 1
    applies: list[str] = field(default_factory=lambda: ["applied"])
    needs_reboot: bool = False
    snapshot: str | None = None
    reboots: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    excluded: list[list[str]] = field(default_factory=list)
    sandboxes: list[FakeSandbox] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def new_sandbox(self, session: Any) -> FakeSandbox:
        sandbox = FakeSandbox(f"trb-{len(self.sandboxes)}")
        self.sandboxes.append(sandbox)
        return sandbox

    def stages(self) -> Stages:
        return Stages(decide=self.decide, in_place=self.restart, capture=self.capture, prepare=self.prepare,
                      reproduce=self.reproduce, diagnose=self.diagnose, attempt=self.attempt,
                      build=self.build, apply_fix=self.apply, reboot=self.reboot,
                      drop_fallback=self.drop, sandbox_probes=lambda ctx, sandbox: SimpleNamespace())

    # -- the stages ------------------------------------------------------------------------------
    def decide(self, ctx: RunContext, issue: Issue, related: Any, component: Any) -> TriageDecision:
        self.calls.append("triage")
        return TriageDecision(issue, related, self.in_place is not None, "scripted")

    def restart(self, ctx: RunContext, issue: Issue, component: Any) -> bool:
        self.calls.append("in-place")
        return bool(self.in_place)

    def capture(self, ctx: RunContext, issue: Issue, related: Any, components: Any) -> Capture:
        self.calls.append("capture")
        return empty_capture(self.tmp)

    def prepare(self, ctx: RunContext, sandbox: Any, captured: Capture, issue: Issue,
                components: Any) -> ImportReport:
        self.calls.append("sandbox")
        return sandbox.import_capture(captured, components)

    def reproduce(self, ctx: RunContext, probes: Any, issue: Issue, imported: Any) -> Reproduction:
        self.calls.append("reproduce")
        return Reproduction(self.reproduced, "scripted", reason=self.not_reproduced_reason)

    def diagnose(self, ctx: RunContext, work: Workbench, issue: Issue, exclude: frozenset[str]) -> Diagnosed:
        self.calls.append("diagnose")
        self.excluded.append(sorted(exclude))
        return Diagnosed(SimpleNamespace(), ())  # type: ignore[arg-type]

    def attempt(self, ctx: RunContext, work: Workbench, issue: Issue, diagnosed: Diagnosed) -> Winner | None:
        self.calls.append("attempts")
        name = self.winners.pop(0) if self.winners else None
        if name is None:
            return None
        return Winner(name, "pb", (), self.needs_reboot, SimpleNamespace(), SimpleNamespace(),  # type: ignore[arg-type]
                      Manifest((), ()),
                      rebooted=self.needs_reboot)

    def build(self, ctx: RunContext, work: Workbench, issue: Issue, winner: Winner) -> Built | Refused:
        self.calls.append("package")
        if self.refuse is not None:
            return Refused(self.refuse)
        package = SimpleNamespace(id="pkg", operations=[{"op": "x"}] * self.operations,
                                  reboot_required=self.needs_reboot)
        return Built(package, self.tmp / "pkg", RebootAnalysis(self.needs_reboot, ()))  # type: ignore[arg-type]

    def apply(self, ctx: RunContext, work: Workbench, issue: Issue, winner: Winner, built: Built, *,
              attempt: int) -> Applied:
        self.calls.append("apply")
        status = self.applies.pop(0)
        store = TransactionStore(ctx.app.state)
        txn = store.create(package_id="pkg", package_dir=str(built.directory), target=str(ctx.spec),
                           component=issue.component, backup_dir=str(self.tmp / "backup"), ops_total=1,
                           issue_id=issue.fingerprint, strategy=winner.strategy, attempt=attempt,
                           session_id=ctx.session.id, reboot_required=self.needs_reboot)
        final = {"applied": "applied" if self.needs_reboot else "committed"}.get(status, status)
        store.step(txn.id, final, state=final)
        plan = VerifyPlan((issue.probe,), self.snapshot, "boot-1" if self.needs_reboot else None)
        return Applied(status, store.get(txn.id), plan, self.needs_reboot)  # type: ignore[arg-type]

    def reboot(self, ctx: RunContext, issue: Issue, applied: Applied) -> RebootStep:
        self.calls.append("reboot")
        how = self.reboots.pop(0)
        if how in {e.value for e in RebootEnd} and how not in (RebootEnd.VERIFIED, RebootEnd.FAILED):
            return RebootStep(RebootEnd(how), "prompt", how="`vmrepair reboot now --target vm:patient`")
        status = "committed" if how == RebootEnd.VERIFIED else how
        outcome = RebootOutcome(applied.txn.id, applied.txn.target, status, f"scripted {status}")  # type: ignore[arg-type]
        if status == "rolled_back":
            TransactionStore(ctx.app.state).step(applied.txn.id, "rolled_back", state="rolled_back")
        end = RebootEnd.VERIFIED if outcome.is_verified else RebootEnd.FAILED
        return RebootStep(end, "automatic", outcome=outcome)

    def drop(self, ctx: RunContext, snapshot: str) -> None:
        self.dropped.append(snapshot)


def run_context(settings: Settings, transport: FakeTransport | None = None) -> RunContext:
    """A RunContext for stage tests: the target is ``transport`` (a FakeTransport), sandboxes are fakes."""
    target = transport or FakeTransport()
    agent = RemoteAgent(target, timeout=5)
    options = Resolved.of(RunOptions(stable_period_s=0, assume_yes=True), settings)
    return RunContext(App(settings), parse_target("vm:patient"), new_session(settings.sessions_dir, "vm:p"),
                      target, agent, Detector(settings.watch, target, agent), options,
                      lambda session: FakeSandbox())
