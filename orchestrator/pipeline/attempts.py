"""Diagnose, rank strategies and try them one by one in the troubleshooting VM.

Before each attempt the VM is at the ``reproduced`` snapshot; a failed step or a failed validation
reverts it, so every strategy starts from the same reproduced fault.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.config.settings import PROJECT_ROOT
from orchestrator.diagnose import diagnose
from orchestrator.diagnose.result import Diagnosis
from orchestrator.errors import StepNotApplicableError, VmRepairError
from orchestrator.model import Issue
from orchestrator.pipeline.baseline_access import baseline_reader
from orchestrator.pipeline.context import RunContext, Sandboxed
from orchestrator.playbooks.loader import load_playbooks
from orchestrator.reboot.analysis import RebootAnalysis, analyse
from orchestrator.repair import RepairContext, execute_strategy, rank_strategies
from orchestrator.repair.execute import check_applicable
from orchestrator.repair.log import AttemptLog
from orchestrator.repair.rank import RankedStrategy
from orchestrator.session.store import StageRecord
from orchestrator.state.outcomes import OutcomeStore
from orchestrator.validate.validator import ValidationReport, Validator

log = logging.getLogger(__name__)


@dataclass
class Winner:
    strategy: str
    playbook: str
    replay_ops: list[dict[str, Any]]
    reboot_required: bool
    diagnosis: dict[str, Any]
    validation: ValidationReport
    #: The validation included a real reboot of the troubleshooting VM (and why it was needed).
    rebooted: bool = False
    reboot_reasons: tuple[str, ...] = ()


def run_attempts(
    ctx: RunContext, work: Sandboxed, issue: Issue, *, exclude: frozenset[str] = frozenset()
) -> Winner | None:
    """Try ranked strategies until one validates; None when none does (the VM is then discarded).

    ``exclude``: strategies that already failed on this target for this issue (rolled back after
    their verification there); they are not tried again.
    """
    session = ctx.session
    playbooks = load_playbooks(PROJECT_ROOT / "playbooks")
    component = work.components[0]
    with session.stage("diagnose") as st:
        diagnosis = diagnose(playbooks, issue, component, work.sandbox.transport, session=session)
        session.write_json(f"diagnosis-{issue.component}", diagnosis.as_dict())
        st.detail = f"cause {diagnosis.cause} (confidence {diagnosis.confidence:.2f})"
    outcomes = OutcomeStore(ctx.app.state)
    ranked = [r for r in rank_strategies(playbooks, issue, diagnosis, outcomes.load())
              if r.name not in exclude]
    if exclude:
        session.event("repair", "excluded", strategies=sorted(exclude))
    if not ranked:
        session.event("repair", "no_strategy", cause=diagnosis.cause)
        return None
    runner = _AttemptRunner(ctx, work, issue, diagnosis, outcomes)
    try:
        for position, candidate in enumerate(ranked, start=1):
            winner = runner.attempt(position, candidate)
            if winner is not None:
                return winner
        return None
    finally:
        session.write_json(f"attempts-{issue.component}", runner.records)


class _AttemptRunner:
    def __init__(
        self, ctx: RunContext, work: Sandboxed, issue: Issue, diagnosis: Diagnosis, outcomes: OutcomeStore
    ) -> None:
        self.ctx, self.work, self.issue, self.diagnosis, self.outcomes = ctx, work, issue, diagnosis, outcomes
        settings = ctx.app.settings
        self.period = (ctx.options.stable_period_s if ctx.options.stable_period_s is not None
                       else settings.repair.stable_period_s)
        self.baseline = baseline_reader(settings, ctx.spec)
        # Probes that pass in the VM now (fault reproduced) must still pass after a repair.
        self.baseline_passing = {r.probe for r in work.probes.run_all() if r.ok and not r.is_unavailable}
        self.records: list[dict[str, Any]] = []
        work.sandbox.snapshot()

    def _repair_context(self) -> RepairContext:
        settings, sandbox = self.ctx.app.settings, self.work.sandbox
        return RepairContext(
            transport=sandbox.transport, agent=sandbox.agent, issue=self.issue,
            component=self.work.components[0], components=list(settings.watch.components),
            variables=dict(self.diagnosis.variables), baseline=self.baseline, session=self.ctx.session,
            step_timeout_s=settings.repair.step_timeout_s,
            placeholders=frozenset(self.work.capture.placeholder_paths),
        )

    def _reboot_analysis(self, candidate: RankedStrategy) -> RebootAnalysis:
        """Does proving this strategy need a boot? Its own declaration, or boot-critical files it
        changed in the VM (compared with the capture)."""
        capture = self.work.capture
        after = self.work.sandbox.agent.manifest(list(capture.paths)).by_path()
        before = capture.manifest.by_path()
        changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p)]
        return analyse(changed, strategy_requires=candidate.strategy.reboot_required)

    def _reboot_if_needed(self, candidate: RankedStrategy, record: dict[str, Any]) -> RebootAnalysis | None:
        """Reboot the VM when the repair needs a boot to be proven; None when that failed (the attempt
        is then recorded as failed and the VM reverted)."""
        try:
            reboot = self._reboot_analysis(candidate)
            if reboot.required:
                record["reboot"] = reboot.as_dict()
                record["reboot"]["result"] = self.work.sandbox.reboot().as_dict()
        except VmRepairError as exc:   # RebootError: it did not come back (emergency mode ...)
            record.update(outcome="failed", reason=f"reboot validation failed: {exc.message}")
            self.outcomes.record(candidate.name, succeeded=False)
            self.work.sandbox.revert()
            return None
        return reboot

    def attempt(self, position: int, candidate: RankedStrategy) -> Winner | None:
        record: dict[str, Any] = {"strategy": candidate.name, "playbook": candidate.playbook,
                                  "score": round(candidate.score, 4), "rank": position}
        self.records.append(record)
        sandbox = self.work.sandbox
        with self.ctx.session.stage(f"attempt-{position}") as st:
            st.detail = candidate.name
            repair_ctx = self._repair_context()
            reason = check_applicable(candidate.strategy, repair_ctx)
            if reason is not None:  # decided before anything changed: no revert needed
                record.update(outcome="skipped", reason=reason)
                st.status, st.detail = "skipped", f"{candidate.name}: {reason}"
                return None
            log = AttemptLog(candidate.name, candidate.playbook)
            try:
                execute_strategy(candidate.strategy, repair_ctx, attempt_log=log)
            except StepNotApplicableError as exc:
                record.update(outcome="skipped", reason=exc.message, steps=log.as_dict()["steps"])
                st.status, st.detail = "skipped", f"{candidate.name}: {exc.message}"
                sandbox.revert()
                return None
            except VmRepairError as exc:  # RepairStepError, a hung step's timeout, a lost VM...
                record.update(outcome="failed", reason=exc.message, steps=log.as_dict()["steps"])
                st.status, st.detail = "failed", f"{candidate.name}: {exc.message}"
                self.outcomes.record(candidate.name, succeeded=False)
                sandbox.revert()
                return None
            record["steps"] = log.as_dict()["steps"]
            if log.unreplayable:
                # A change the fix package cannot carry to the target would make "repaired" a lie.
                why = f"changes that cannot be replayed on the target: {', '.join(log.unreplayable)}"
                record.update(outcome="failed", reason=why)
                st.status, st.detail = "failed", f"{candidate.name}: {why}"
                sandbox.revert()
                return None
            reboot = self._reboot_if_needed(candidate, record)
            if reboot is None:
                st.status, st.detail = "failed", f"{candidate.name}: {record['reason']}"
                return None
            return self._validate(candidate, record, st, log, reboot)

    def _validate(self, candidate: RankedStrategy, record: dict[str, Any], st: StageRecord, log: AttemptLog,
                  reboot: RebootAnalysis) -> Winner | None:
        sandbox = self.work.sandbox
        validator = Validator(sandbox.transport, self.work.probes, self.ctx.app.settings.watch,
                              stable_period_s=self.period, load=self.ctx.app.settings.repair.load)
        report = validator.validate(self.issue, self.work.components[0], self.baseline_passing)
        record["validation"] = report.as_dict()
        self.outcomes.record(candidate.name, succeeded=report.passed)
        if report.passed:
            record["outcome"] = "validated"
            st.detail = f"{candidate.name}: validated"
            return Winner(candidate.name, candidate.playbook, list(log.replay_ops),
                          candidate.strategy.reboot_required, self.diagnosis.as_dict(), report,
                          rebooted=reboot.required, reboot_reasons=reboot.reasons)
        record["outcome"] = "validation_failed"
        st.status, st.detail = "failed", f"{candidate.name}: validation failed"
        sandbox.revert()
        return None
