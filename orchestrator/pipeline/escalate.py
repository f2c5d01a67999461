"""Repair one issue: triage in place, or reproduce → diagnose → ranked attempts in a troubleshooting VM →
fix package → apply with a verified backup → validate on the target."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from orchestrator.app import App
from orchestrator.capture.snapshot import capture_components
from orchestrator.errors import PipelineError, VmRepairError
from orchestrator.model import Component, Issue, IssueKind, SessionStatus
from orchestrator.pipeline import attempts, triage
from orchestrator.pipeline.apply_step import apply_fix
from orchestrator.pipeline.context import RunContext, Sandboxed, component_result
from orchestrator.pipeline.probes import DetectorProbes
from orchestrator.reboot.notify import RebootEvent, build_notifiers
from orchestrator.state.transactions import OPERATOR_ROLLBACK, TransactionStore

log = logging.getLogger(__name__)
DISK_KINDS = {IssueKind.DISK_FULL, IssueKind.INODES_FULL}
#: How long a strategy rolled back on a target stays excluded for the same issue there.
PRIOR_FAILURE_HORIZON = dt.timedelta(hours=24)


def _components_for(app: App, issue: Issue) -> list[Component]:
    watch = app.settings.watch
    if issue.kind in DISK_KINDS:
        # A disk issue belongs to the host: every component with logs is in scope.
        return [c for c in watch.components if c.log_paths]
    try:
        return [watch.component(issue.component)]
    except KeyError as exc:
        raise PipelineError(f"issue {issue.id} names unknown component {issue.component!r}",
                            stage="triage") from exc



def repair_issue(ctx: RunContext, issue: Issue, related: tuple[Issue, ...]) -> dict[str, Any]:
    app, session, transport, probes, options = ctx.app, ctx.session, ctx.transport, ctx.probes, ctx.options
    components = _components_for(app, issue)
    primary_component = components[0] if issue.kind not in DISK_KINDS else None
    with session.stage("triage") as st:
        decision = triage.decide(issue, related, primary_component)
        session.write_json(f"triage-{issue.component}", decision.as_dict())
        st.detail = decision.reason
    if decision.in_place and primary_component is not None and not options.dry_run:
        with session.stage("in-place") as st:
            fixed, log_entries = triage.restart_in_place(
                transport, primary_component, lambda: probes.component_results(issue.component))
            session.write_json(f"in-place-{issue.component}", log_entries)
            st.detail = "resolved by restart" if fixed else "still failing; escalating"
        if fixed:
            return component_result(issue, SessionStatus.REPAIRED, "restarted in place; probes pass",
                           in_place=True)

    return _with_budget(ctx, issue, related, components)


def _prior_failures(ctx: RunContext, issue: Issue) -> set[str]:
    """Strategies already rolled back on this target for this issue (today): not tried again, and
    counted against the budget, so a deferred (window) verification failure is remembered too."""
    since = (dt.datetime.now(dt.UTC) - PRIOR_FAILURE_HORIZON).isoformat(timespec="seconds")
    store = TransactionStore(ctx.app.state)
    # An operator's `vmrepair fixes rollback` says nothing about whether the strategy works.
    return {t.strategy for t in store.find(states=("rolled_back",), target=str(ctx.spec))
            if t.issue_id == issue.fingerprint and t.created_at >= since and t.strategy
            and not any(s["step"] == OPERATOR_ROLLBACK for s in store.steps(t.id))}


def _with_budget(
    ctx: RunContext, issue: Issue, related: tuple[Issue, ...], components: list[Component]
) -> dict[str, Any]:
    """Reproduce → repair → apply, and after a clean rollback on the target try the next validated
    strategy, within the attempt budget. Never a loop: each strategy is applied at most once."""
    budget = ctx.options.attempt_budget or ctx.app.settings.reboot.attempt_budget
    failed = _prior_failures(ctx, issue)
    tried: list[dict[str, Any]] = []
    while len(failed) < budget:
        attempt_ctx = dataclasses.replace(ctx, attempt=len(failed) + 1)
        detail = _repair_in_vm(attempt_ctx, issue, related, components, frozenset(failed))
        if not detail.get("retry"):
            return {**detail, "attempts": [*tried, _brief(detail)]} if tried else detail
        tried.append(_brief(detail))
        failed.add(str(detail["strategy"]))
        ctx.session.event("repair", "retry", failed=sorted(failed), budget=budget)
    return _budget_spent(ctx, issue, failed, budget, tried)


def _brief(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: detail[k] for k in ("strategy", "status", "summary", "txn") if k in detail}


def _budget_spent(
    ctx: RunContext, issue: Issue, failed: set[str], budget: int, tried: list[dict[str, Any]]
) -> dict[str, Any]:
    """Degraded but up: the last fix was rolled back, the host stays reachable, a person takes over."""
    txns = [t for t in TransactionStore(ctx.app.state).find(target=str(ctx.spec))
            if t.issue_id == issue.fingerprint]
    support_ref = txns[0].support_ref if txns else "VMR-" + issue.fingerprint[:8].upper()
    steps = [f"strategies tried and rolled back: {', '.join(sorted(failed))}",
             f"inspect the sessions: `vmrepair sessions` and `vmrepair fixes list --target {ctx.spec}`",
             f"fix {issue.subject} by hand; vmrepair will not apply another fix for this issue today",
             f"quote support reference {support_ref}"]
    notifier = build_notifiers(ctx.app.settings.reboot, ctx.app.quiet_audit)
    notifier.notify(RebootEvent(kind="budget_exhausted", target=str(ctx.spec),
                                message=f"{issue.component}: {issue.summary}: attempt budget of {budget} "
                                f"spent; the host stays up in a degraded state",
                                txn_id=txns[0].id if txns else None, support_ref=support_ref,
                                manual_steps=steps))
    ctx.session.event("repair", "budget_exhausted", budget=budget, failed=sorted(failed),
                      support_ref=support_ref)
    return component_result(issue, SessionStatus.NOT_REPAIRED,
                   f"attempt budget ({budget}) spent: {', '.join(sorted(failed))} rolled back; host left "
                   f"up and degraded; support reference {support_ref}", degraded=True,
                   support_ref=support_ref, manual_steps=steps, attempts=tried)


def _repair_in_vm(
    ctx: RunContext, issue: Issue, related: tuple[Issue, ...], components: list[Component],
    exclude: frozenset[str],
) -> dict[str, Any]:
    # Imported here: it loads libvirt, which a daemon that only repairs in place never needs.
    from orchestrator.sandbox.vm import TroubleshootingVm

    app, session, transport, agent = ctx.app, ctx.session, ctx.transport, ctx.agent
    sandbox = TroubleshootingVm(app, session)
    sandbox.start()  # boots while the target is captured
    try:
        with session.stage("capture") as st:
            capture = capture_components(session, transport, agent, components,
                                         {issue.kind, *(i.kind for i in related)},
                                         max_file_bytes=app.settings.repair.max_capture_file_bytes)
            st.detail = f"{len(capture.manifest.entries)} entries, {len(capture.placeholders)} placeholders"
        with session.stage("sandbox") as st:
            up = sandbox.wait_ready()
            imported = sandbox.import_capture(capture, components)
            if issue.kind in DISK_KINDS and capture.disk is not None:
                sandbox.fill_disk_to(capture.disk.used_pct if issue.kind is IssueKind.DISK_FULL
                                     else app.settings.watch.thresholds.disk_critical_pct)
            state = "complete" if imported.is_complete else f"partial: {imported.error or 'see evidence'}"
            how = "restored warm" if up.is_warm else "booted"
            st.detail = f"{sandbox.name} {how} in {up.boot_seconds:.1f} s; import {state}"
        vm_probes = DetectorProbes(app.settings.watch, sandbox.transport, sandbox.agent)
        with session.stage("reproduce") as st:
            observed = vm_probes.run_probe(issue.probe)
            session.write_json(f"reproduce-{issue.component}", {
                "probe": issue.probe, "ok": observed.ok, "summary": observed.summary,
                "evidence": observed.evidence, "import_complete": imported.is_complete})
            if observed.ok or observed.is_unavailable:
                st.detail = f"probe {issue.probe} passes in the VM: not reproduced"
                return component_result(issue, SessionStatus.NOT_REPRODUCED,
                               f"{issue.probe} passes in the troubleshooting VM; nothing applied")
            st.detail = f"reproduced: {observed.summary}"
        work = Sandboxed(sandbox, vm_probes, capture, components)
        winner = attempts.run_attempts(ctx, work, issue, exclude=exclude)
        if winner is None:
            return component_result(issue, SessionStatus.NOT_REPAIRED,
                           "no strategy passed validation in the troubleshooting VM; nothing applied")
        return apply_fix(ctx, work, issue, winner)
    finally:
        try:
            sandbox.destroy()
        except VmRepairError as exc:
            log.exception("cannot destroy the troubleshooting VM")
            session.event("cleanup", "error", message=exc.message)
