"""Stages diagnose → attempts: find the cause in the sandbox, rank the strategies, and try them one by
one until one validates.

Before each attempt the sandbox is at its ``reproduced`` snapshot; a failed step or a failed validation
reverts it, so every strategy starts from the same reproduced fault.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.agent.api import Manifest
from orchestrator.baseline.store import usable_baseline
from orchestrator.boot.critical import RebootAnalysis, analyse
from orchestrator.boot.host import RebootResult
from orchestrator.diagnose import diagnose as run_diagnostics
from orchestrator.diagnose.result import Diagnosis
from orchestrator.errors import StepNotApplicableError, VmRepairError
from orchestrator.fleet.signature import FaultSignature, fault_signature, os_release_label
from orchestrator.layers.exact import TargetDebs
from orchestrator.model import Component, Issue
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.values import Winner, Workbench
from orchestrator.playbooks.catalog import load_catalog
from orchestrator.repair import execute_strategy, rank_strategies
from orchestrator.repair.execute import check_applicable
from orchestrator.repair.generate import Situation, generate_strategies, prefetch
from orchestrator.repair.log import AttemptLog
from orchestrator.repair.rank import Matched, RankedStrategy
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.session.store import StageRecord
from orchestrator.state.outcomes import STAGE_VM, STAGES, OutcomeStore, StrategyRecord
from orchestrator.steps.context import RepairContext
from orchestrator.steps.registry import describe
from orchestrator.targets.spec import TargetKind
from orchestrator.validate.validator import ValidationReport, Validator

log = logging.getLogger(__name__)


@dataclass
class AttemptRecord:
    """One strategy tried in the sandbox, filled in as the attempt goes (the ``attempts-*.json``
    evidence the report reads)."""

    strategy: str
    playbook: str
    score: float
    rank: int
    #: What the strategy does and, for a generated one, the evidence that produced it.
    description: str = ""
    #: Its steps as written (for a generated one: with the concrete paths and units filled in).
    planned: tuple[str, ...] = ()
    outcome: str = ""
    reason: str | None = None
    log: AttemptLog | None = None
    reboot: RebootAnalysis | None = None
    rebooted: RebootResult | None = None
    validation: ValidationReport | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy, "playbook": self.playbook,
                               "score": round(self.score, 4), "rank": self.rank}
        if self.description:
            out["description"] = self.description
        if self.planned:
            out["planned"] = list(self.planned)
        if self.log is not None:
            out["steps"] = [step.as_dict() for step in self.log.steps]
        if self.reboot is not None and self.rebooted is not None:
            out["reboot"] = {**self.reboot.as_dict(), "result": self.rebooted.as_dict()}
        if self.validation is not None:
            out["validation"] = self.validation.as_dict()
        if self.outcome:
            out["outcome"] = self.outcome
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Diagnosed:
    diagnosis: Diagnosis
    #: Strategies worth trying, best first, without those excluded for this issue on this target.
    ranked: tuple[RankedStrategy, ...]
    #: The fault as the fleet's record knows it: outcomes of the attempts are recorded for it.
    signature: FaultSignature | None = None


def debs_dir(ctx: RunContext) -> Path:
    """Where this run keeps the verified .debs its reinstall steps used (read by the package stage)."""
    return ctx.session.dir / "debs"


def diagnose(ctx: RunContext, work: Workbench, issue: Issue, exclude: frozenset[str]) -> Diagnosed:
    """Run the playbooks' diagnostics, generate strategies from the evidence
    (:mod:`orchestrator.repair.generate`), and rank both together. The sandbox's snapshot that the
    attempts revert to is taken meanwhile: diagnostics and the generators' questions only read the VM
    (the playbook schema's contract), so the VM they leave is the VM they found.

    Raises: PlaybookError (a drop-in playbook is invalid), TransportError, and the snapshot's error
    (SandboxError)."""
    session = ctx.session
    playbooks = load_catalog(ctx.app.settings)
    with session.stage(Stage.DIAGNOSE) as st:
        primary = _situation(ctx, work, issue)
        # The same VM answers for every issue of the component (replace keeps the caches).
        others = [replace(primary, issue=r) for r in work.related if r.component == issue.component]
        # The generators' questions (the related issues' too) are asked side by side while the
        # playbooks' diagnostics run and the snapshot is taken: one after the other they were 1.6 s of
        # guest processes and 0.5 s of a paused VM.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="prefetch") as pool:
            snapshot = pool.submit(work.sandbox.snapshot)
            asked = pool.submit(prefetch, primary, related=others)
            diagnosis = run_diagnostics(playbooks, issue, work.component, work.sandbox.transport,
                                        session=session)
            asked.result()
            snapshot.result()
        generated = generate_strategies(primary, related=others)
        signature = signature_of(ctx, work, issue, diagnosis)
        history = OutcomeStore(ctx.app.state).load_for(signature)
        ranked = tuple(r for r in rank_strategies(playbooks, issue, diagnosis, history, generated)
                       if r.name not in exclude)
        session.write_json(Evidence.DIAGNOSIS.file(issue.component), {
            **diagnosis.as_dict(), "generated": [_generated(m) for m in generated],
            "signature": signature.as_dict(), "ranking": [r.as_dict() for r in ranked],
            "concordance": concordance(ranked, history)})
        st.detail = (f"cause {diagnosis.cause} (confidence {diagnosis.confidence:.2f}); "
                     f"{len(generated)} strategies generated from the evidence")
    if exclude:
        session.event(Stage.REPAIR, "excluded", strategies=sorted(exclude))
    if not ranked:
        session.event(Stage.REPAIR, "no_strategy", cause=diagnosis.cause)
    return Diagnosed(diagnosis, ranked, signature)


def signature_of(ctx: RunContext, work: Workbench, issue: Issue, diagnosis: Diagnosis) -> FaultSignature:
    """The signature of ``issue`` as ``diagnosis`` explains it, for the outcomes of its repair: the
    component the issue names (a disk issue's is the host, not the first component with logs), the
    target's OS release, and the target's names kept out of the evidence. Never raises."""
    component = next((c for c in work.components if c.name == issue.component), Component(issue.component))
    facts = work.capture.facts
    return fault_signature(issue, component, diagnosis, os_release_label(None if facts is None else facts.os),
                           hostnames=_target_names(ctx))


def _target_names(ctx: RunContext) -> tuple[str, ...]:
    """Names that identify the target: its VM, host or ssh alias; this host's own name when local."""
    if ctx.spec.kind is TargetKind.LOCAL:
        return (socket.gethostname(),)
    return (ctx.spec.name,)


def concordance(ranked: tuple[RankedStrategy, ...],
                history: dict[str, StrategyRecord]) -> list[dict[str, object]]:
    """Per ranked strategy, its (successes, tries) per stage for exactly this fault: whether what
    validated in a VM also held on the targets, and after their reboots."""
    out: list[dict[str, object]] = []
    for candidate in ranked:
        record = history.get(candidate.name, StrategyRecord())
        out.append({"strategy": candidate.name, **{stage: list(record.stage(stage)) for stage in STAGES}})
    return out


def _situation(ctx: RunContext, work: Workbench, issue: Issue) -> Situation:
    capture = work.capture
    return Situation(issue, work.component, capture.manifest,
                     usable_baseline(ctx.app.settings, ctx.spec.slug), work.sandbox.transport,
                     captured=(*capture.paths, *capture.meta_paths), excluded=capture.excluded)


def _generated(matched: Matched) -> dict[str, Any]:
    """A generated strategy as the evidence records it: what produced it and what it will do."""
    strategy = matched.strategy
    return {"strategy": strategy.name, "playbook": strategy.playbook, "description": strategy.description,
            "cause": matched.cause, "confidence": matched.confidence,
            "effectiveness": strategy.effectiveness, "last_resort": matched.last_resort,
            "steps": [describe(step) for step in strategy.steps]}


def run_attempts(ctx: RunContext, work: Workbench, issue: Issue, diagnosed: Diagnosed) -> Winner | None:
    """Try the ranked strategies until one validates; None when none does."""
    if not diagnosed.ranked:
        return None
    runner = _AttemptRunner(ctx, work, issue, diagnosed.diagnosis, diagnosed.signature)
    try:
        for position, candidate in enumerate(diagnosed.ranked, start=1):
            winner = runner.attempt(position, candidate)
            if winner is not None:
                return winner
        return None
    finally:
        ctx.session.write_json(Evidence.ATTEMPTS.file(issue.component), [r.as_dict() for r in runner.records])


class _AttemptRunner:
    def __init__(self, ctx: RunContext, work: Workbench, issue: Issue, diagnosis: Diagnosis,
                 signature: FaultSignature | None) -> None:
        self.ctx, self.work, self.issue, self.diagnosis = ctx, work, issue, diagnosis
        self.signature = signature
        self.outcomes = OutcomeStore(ctx.app.state)
        self.baseline = usable_baseline(ctx.app.settings, ctx.spec.slug)
        # Probes that passed in the sandbox with the fault reproduced must still pass after a repair.
        self.baseline_passing = set(work.passing)
        self.records: list[AttemptRecord] = []
        facts = work.capture.facts
        # reinstall_package takes the target's exact .debs from here (kept for the package stage).
        self.debs = None if facts is None else TargetDebs(
            ctx.transport, facts, local=ctx.app.local, settings=ctx.app.settings, dest=debs_dir(ctx))
        # The snapshot a failed attempt reverts to was taken by :func:`diagnose`.

    def _repair_context(self) -> RepairContext:
        settings, sandbox = self.ctx.app.settings, self.work.sandbox
        return RepairContext(
            transport=sandbox.transport, agent=sandbox.agent, issue=self.issue,
            component=self.work.component, components=list(self.ctx.watch.components),
            variables=dict(self.diagnosis.variables), baseline=self.baseline, session=self.ctx.session,
            step_timeout_s=settings.repair.step_timeout_s,
            placeholders=frozenset(self.work.capture.placeholder_paths), debs=self.debs,
            # The validation's stability period watches the component's units after the steps.
            settle_watched_s=self.ctx.options.stable_period_s,
        )

    def _changes(self, candidate: RankedStrategy) -> tuple[Manifest, RebootAnalysis]:
        """The captured paths as the strategy left them, and whether proving it needs a boot: its own
        declaration, or boot-critical files it changed (compared with the capture). The manifest is
        read once here; the package stage diffs the same one."""
        capture, agent = self.work.capture, self.work.sandbox.agent
        manifest = agent.manifest(list(capture.paths), exclude=capture.excluded)
        if capture.meta_paths:   # the directories captured by their own entry: read the same way
            meta = agent.manifest(list(capture.meta_paths), recursive=False)
            manifest = Manifest(manifest.entries + meta.entries, manifest.missing + meta.missing)
        after, before = manifest.by_path(), capture.manifest.by_path()
        changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p)]
        return manifest, analyse(changed, strategy_requires=candidate.strategy.reboot_required)

    def _fail(self, record: AttemptRecord, st: StageRecord, outcome: str, reason: str, *,
              counts: bool, revert: bool = True) -> None:
        """Record a failed (or skipped) attempt; ``counts``: it lowers the strategy's record."""
        record.outcome, record.reason = outcome, reason
        st.status = "skipped" if outcome == "skipped" else "failed"
        st.detail = f"{record.strategy}: {reason}"
        if counts:
            self.outcomes.record(record.strategy, succeeded=False, stage=STAGE_VM, signature=self.signature)
        if revert:
            self.work.sandbox.revert()

    def attempt(self, position: int, candidate: RankedStrategy) -> Winner | None:
        record = AttemptRecord(candidate.name, candidate.playbook, candidate.score, position,
                               candidate.strategy.description,
                               tuple(describe(step) for step in candidate.strategy.steps))
        self.records.append(record)
        with self.ctx.session.stage(Stage.ATTEMPT.numbered(position)) as st:
            st.detail = candidate.name
            repair_ctx = self._repair_context()
            reason = check_applicable(candidate.strategy, repair_ctx)
            if reason is not None:  # decided before anything changed: no revert needed
                self._fail(record, st, "skipped", reason, counts=False, revert=False)
                return None
            log = record.log = AttemptLog(candidate.name, candidate.playbook)
            try:
                execute_strategy(candidate.strategy, repair_ctx, attempt_log=log)
            except StepNotApplicableError as exc:
                self._fail(record, st, "skipped", exc.message, counts=False)
                return None
            except VmRepairError as exc:  # RepairStepError, a hung step's timeout, a lost sandbox...
                self._fail(record, st, "failed", exc.message, counts=True)
                return None
            if log.unreplayable:
                # A change the fix package cannot carry to the target would make "repaired" a lie.
                why = f"changes that cannot be replayed on the target: {', '.join(log.unreplayable)}"
                self._fail(record, st, "failed", why, counts=False)
                return None
            try:
                after, reboot = self._changes(candidate)
                record.reboot = reboot
                if reboot.required:
                    record.rebooted = self.work.sandbox.reboot()
            except VmRepairError as exc:   # RebootError: it did not come back (emergency mode ...)
                self._fail(record, st, "failed", f"reboot validation failed: {exc.message}", counts=True)
                return None
            return self._validate(candidate, record, st, log, (after, reboot))

    def _validate(self, candidate: RankedStrategy, record: AttemptRecord, st: StageRecord, log: AttemptLog,
                  changes: tuple[Manifest, RebootAnalysis]) -> Winner | None:
        after, reboot = changes
        validator = Validator(self.work.sandbox.transport, self.work.probes, self.ctx.watch,
                              stable_period_s=self.ctx.options.stable_period_s,
                              load=self.ctx.app.settings.repair.load, full_round_s=self.work.round_s)
        report = validator.validate(self.issue, self.work.component, self.baseline_passing)
        record.validation = report
        self.outcomes.record(candidate.name, succeeded=report.passed, stage=STAGE_VM,
                             signature=self.signature)
        if not report.passed:
            record.outcome = "validation_failed"
            st.status, st.detail = "failed", f"{candidate.name}: validation failed"
            self.work.sandbox.revert()
            return None
        record.outcome = "validated"
        st.detail = f"{candidate.name}: validated"
        return Winner(candidate.name, candidate.playbook, tuple(log.replay_ops),
                      candidate.strategy.reboot_required, self.diagnosis, report, after,
                      rebooted=reboot.required, reboot_reasons=reboot.reasons)

