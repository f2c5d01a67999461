"""Turn the validated VM state into a fix package and apply it to the target.

The package holds only what actually changed in the VM (plus replayed data operations), limited to the
allow-listed roots. ``--dry-run`` stops here; otherwise the operator confirms (unless ``--yes``), the
package is applied as a journalled transaction with a verified backup and validated on the target, and
restored on failure. A package that needs a reboot ends ``pending_reboot`` and goes to
:mod:`.reboot_step` (a ``vm:`` target first gets a hypervisor snapshot as its boot fallback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.agent.api import Manifest
from orchestrator.agent.client import RemoteAgent
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.audit.sink import log_recovery
from orchestrator.errors import FixPackageError, VmRepairError
from orchestrator.fixpkg import FixPackage, compute_package
from orchestrator.fsutil import ensure_private_dir
from orchestrator.model import Component, Issue, SessionStatus
from orchestrator.pipeline.attempts import Winner
from orchestrator.pipeline.context import RunContext, Sandboxed, component_result
from orchestrator.pipeline.reboot_step import schedule_and_verify
from orchestrator.reboot.analysis import analyse
from orchestrator.reboot.host import boot_id
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.state.transactions import TransactionStore, TxnRecord, new_txn_id
from orchestrator.targets.spec import TargetKind
from orchestrator.validate.validator import Validator

#: Stability re-check on the live target: shorter than in the VM and without artificial load.
TARGET_STABLE_PERIOD_S = 6.0


def _within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def authoritative_after(
    before: Manifest, after: Manifest, components: list[Component]
) -> tuple[Manifest, list[str]]:
    """The VM's state where it is authoritative (config and unit files), the captured state elsewhere.

    Data and log files change in the VM on their own (its services log, its sampleapp records the
    validation's requests): copying them would write the VM's activity into the target's data. Data
    changes reach the target only as replayed operations (rotate_log, jsonl_repair). Returns the
    manifest to diff against and the VM changes left out (recorded in the session).
    """
    roots = [p for c in components for p in (*c.config_paths, *c.unit_paths)]
    before_map, after_map = before.by_path(), after.by_path()
    merged = [e for p, e in after_map.items() if _within(p, roots)]
    merged += [e for p, e in before_map.items() if not _within(p, roots)]
    ignored = sorted(p for p in set(before_map) | set(after_map)
                     if not _within(p, roots) and before_map.get(p) != after_map.get(p))
    missing = tuple(p for p in after.missing if _within(p, roots))
    missing += tuple(p for p in before.missing if not _within(p, roots))
    return Manifest(tuple(merged), missing), ignored



def apply_fix(ctx: RunContext, work: Sandboxed, issue: Issue, winner: Winner) -> dict[str, Any]:
    try:
        package, pkg_dir = _build_package(ctx, work, issue, winner)
    except FixPackageError as exc:
        # Validated in the VM but not expressible as a safe package (e.g. a symlink change): nothing
        # is applied, and the reason is the result.
        return component_result(issue, SessionStatus.NOT_REPAIRED,
                       f"{winner.strategy} validated in the VM but cannot be packaged safely: {exc.message}",
                       strategy=winner.strategy)
    return _apply(ctx, work, issue, winner, (package, pkg_dir))


def _build_package(
    ctx: RunContext, work: Sandboxed, issue: Issue, winner: Winner
) -> tuple[FixPackage, Path]:
    app, session = ctx.app, ctx.session
    sandbox, capture, components = work.sandbox, work.capture, work.components
    with session.stage("package") as st:
        after, ignored = authoritative_after(capture.manifest, sandbox.agent.manifest(list(capture.paths)),
                                             components)
        package = compute_package(
            capture.manifest, after, sandbox.agent, winner.replay_ops,
            placeholders=capture.placeholder_paths, allowed_roots=app.settings.repair.allowed_roots,
            diagnosis=winner.diagnosis, validation=winner.validation.as_dict(), issue=issue.as_dict(),
            reboot_required=winner.reboot_required or winner.rebooted,
        )
        reboot = analyse(package.paths, validated_with_reboot=winner.rebooted,
                         strategy_requires=winner.reboot_required)
        if reboot.required and not winner.rebooted:
            # Never ship a boot-critical change that was not proven by a boot in the VM.
            raise FixPackageError(f"{'; '.join(reboot.reasons)}, but its validation did not include a reboot")
        pkg_dir = ensure_private_dir(app.settings.state_dir / "packages" / package.id)
        package.save(pkg_dir)
        session.write_json(f"fix-package-{issue.component}", {
            **package.as_dict(), "directory": str(pkg_dir), "strategy": winner.strategy,
            "ignored_vm_changes": ignored, "reboot": reboot.as_dict()})
        st.detail = f"{len(package.operations)} operation(s) from strategy {winner.strategy}"
    return package, pkg_dir


def _apply(
    ctx: RunContext, work: Sandboxed, issue: Issue, winner: Winner, built: tuple[FixPackage, Path]
) -> dict[str, Any]:
    package, pkg_dir = built
    app, session, transport, probes, options = ctx.app, ctx.session, ctx.transport, ctx.probes, ctx.options
    components = work.components
    if not package.operations:
        return component_result(issue, SessionStatus.NOT_REPAIRED,
                       f"strategy {winner.strategy} validated but changed nothing applicable",
                       strategy=winner.strategy)
    if options.dry_run:
        return component_result(issue, SessionStatus.NOT_REPAIRED,
                       f"dry run: validated fix ({winner.strategy}, {len(package.operations)} operations) "
                       f"not applied; package {pkg_dir}", strategy=winner.strategy, dry_run=True,
                       package=str(pkg_dir))
    if not options.assume_yes:
        question = (f"Apply {len(package.operations)} operation(s) of strategy {winner.strategy} to "
                    f"{session.target}? ")
        if options.confirm is None or not options.confirm(question):
            return component_result(issue, SessionStatus.NOT_REPAIRED, "operator declined; nothing applied",
                           strategy=winner.strategy, package=str(pkg_dir))
    target_passing = {r.probe for r in probes.run_all() if r.ok and not r.is_unavailable}
    component = components[0]

    def validate_on_target() -> bool:
        report = Validator(transport, probes, app.settings.watch,
                           stable_period_s=TARGET_STABLE_PERIOD_S, load=False).validate(
            issue, component, target_passing)
        session.write_json(f"target-validation-{issue.component}", report.as_dict())
        return report.passed

    store = TransactionStore(app.state)
    # One backup per transaction: a retry in the same session applies another package.
    txn_id = new_txn_id()
    backup_dir = ensure_private_dir(app.settings.state_dir / "backups" / session.id
                                    / f"{issue.component}-{txn_id}")
    txn = store.create(txn_id=txn_id,
        package_id=package.id, package_dir=str(pkg_dir), target=str(ctx.spec), session_id=session.id,
        component=issue.component, issue_id=issue.fingerprint, strategy=winner.strategy,
        backup_dir=str(backup_dir), ops_total=len(package.operations),
        reboot_required=package.reboot_required, attempt=ctx.attempt)
    # What "verified" means for this fix, durable before the first change: recovery after a crash, and
    # the verification after a reboot (possibly by another process), check exactly this.
    needs_reboot = package.reboot_required
    plan = VerifyPlan(tuple(sorted({issue.probe} | target_passing)),
                      _boot_fallback(ctx, txn.id) if needs_reboot else None,
                      boot_id(transport) if needs_reboot else None)
    record_plan(store, txn.id, plan)
    with session.stage("apply") as st:
        apply_agent = RemoteAgent(transport, timeout=app.settings.repair.apply_op_timeout_s)
        result = apply_package(package, apply_agent, transport, backup_dir=backup_dir, session=session,
                               journal=Journal(store, txn, package.operations), validate=validate_on_target,
                               needs_reboot=needs_reboot)
        session.write_json(f"apply-{issue.component}", result.as_dict())
        st.detail = f"{result.status}; transaction {txn.id}; backup in {backup_dir}"
    _audit_apply(ctx, issue, txn.id, result.status, winner.strategy)
    if result.status == "applied" and needs_reboot:
        return schedule_and_verify(ctx, issue, store.get(txn.id), plan)
    if plan.snapshot is not None:
        _drop_fallback(ctx, plan.snapshot)
    return _applied_result(issue, winner, result.status, txn, pkg_dir)


def _applied_result(
    issue: Issue, winner: Winner, status: str, txn: TxnRecord, pkg_dir: Path
) -> dict[str, Any]:
    backup_dir = txn.backup_dir
    if status == "applied":
        return component_result(issue, SessionStatus.REPAIRED,
                       f"{winner.strategy} applied and verified on the target", strategy=winner.strategy,
                       backup=backup_dir, package=str(pkg_dir), txn=txn.id)
    if status == "rolled_back":
        # Restored cleanly: the next validated strategy may be tried (escalate keeps the budget).
        return component_result(issue, SessionStatus.NOT_REPAIRED, f"apply rolled_back: target restored from "
                       f"{backup_dir}", strategy=winner.strategy, backup=backup_dir, txn=txn.id,
                       retry=True)
    return component_result(issue, SessionStatus.NOT_REPAIRED, f"apply {status}; see {backup_dir}",
                   strategy=winner.strategy, backup=backup_dir, txn=txn.id,
                   support_ref=txn.support_ref)


def _audit_apply(ctx: RunContext, issue: Issue, txn_id: str, status: str, strategy: str) -> None:
    """The target changed (or was restored): a durable audit record either way."""
    audit = ctx.app.quiet_audit
    details = {"txn": txn_id, "strategy": strategy, "target": str(ctx.spec)}
    if status in ("rolled_back", "rollback_failed"):
        log_recovery(audit, issue.component, "rollback", status=status, **details)
    elif status == "aborted":
        audit.record("fix_aborted", component=issue.component, status=status, details=details)
    else:
        audit.record("fix_applied", component=issue.component, status=status, details=details, durable=True)


def _boot_fallback(ctx: RunContext, txn_id: str) -> str | None:
    """For a ``vm:`` target, a hypervisor snapshot taken just before applying: if the fix makes it
    unbootable, reverting to it is the rollback. Other targets have none here."""
    if ctx.spec.kind is not TargetKind.VM:
        return None
    name = f"vmrepair-pre-{txn_id}"
    with ctx.session.stage("boot-fallback") as st:
        ctx.app.vms.snapshot(ctx.spec.name, name, "vmrepair: before applying a fix that needs a reboot")
        st.detail = f"snapshot {name} of {ctx.spec}"
    return name


def _drop_fallback(ctx: RunContext, snapshot: str) -> None:
    try:
        ctx.app.vms.delete_snapshot(ctx.spec.name, snapshot)
    except VmRepairError as exc:
        ctx.session.event("boot-fallback", "not_deleted", snapshot=snapshot, error=exc.message)
