"""Stage apply: the built package goes to the target as one journalled transaction with a verified
backup, validated on the target and restored on failure.

:func:`gate` comes first (nothing to apply, ``--dry-run``, the operator declines): it is the last point
at which the target is untouched. A fix that needs a reboot gets its verification plan (and, for a
``vm:`` target, a hypervisor snapshot as its boot fallback) recorded before the first change.
"""

from __future__ import annotations

from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.apply.result import ApplyStatus
from orchestrator.audit.sink import log_recovery
from orchestrator.boot.host import boot_id
from orchestrator.errors import VmRepairError
from orchestrator.fixpkg import FixPackage
from orchestrator.fsutil import ensure_private_dir
from orchestrator.model import Issue, SessionStatus
from orchestrator.pipeline.attempts import signature_of
from orchestrator.pipeline.context import RunContext
from orchestrator.pipeline.outcome import IssueOutcome
from orchestrator.pipeline.values import Applied, Built, Winner, Workbench
from orchestrator.reboot.verify import VerifyPlan, record_plan
from orchestrator.session.evidence import Evidence, Stage
from orchestrator.state.outcomes import STAGE_TARGET, OutcomeStore
from orchestrator.state.transactions import TransactionStore, new_txn_id
from orchestrator.targets.spec import TargetKind
from orchestrator.validate.validator import Validator

#: Stability re-check on the live target: shorter than in the sandbox and without artificial load.
TARGET_STABLE_PERIOD_S = 6.0


def gate(ctx: RunContext, issue: Issue, winner: Winner, built: Built) -> IssueOutcome | None:
    """Why this package is not applied (an outcome), or None to go ahead."""
    operations, directory = built.package.operations, str(built.directory)
    if not operations:
        return IssueOutcome(issue, SessionStatus.NOT_REPAIRED,
                            f"strategy {winner.strategy} validated but changed nothing applicable",
                            strategy=winner.strategy)
    if ctx.options.dry_run:
        return IssueOutcome(issue, SessionStatus.NOT_REPAIRED,
                            f"dry run: validated fix ({winner.strategy}, {len(operations)} operations) "
                            f"not applied; package {directory}", strategy=winner.strategy, dry_run=True,
                            package=directory)
    if not ctx.options.assume_yes:
        question = (f"Apply {len(operations)} operation(s) of strategy {winner.strategy} to "
                    f"{ctx.session.target}? ")
        if ctx.options.confirm is None or not ctx.options.confirm(question):
            return IssueOutcome(issue, SessionStatus.NOT_REPAIRED, "operator declined; nothing applied",
                                strategy=winner.strategy, package=directory)
    return None


def apply(ctx: RunContext, work: Workbench, issue: Issue, winner: Winner, built: Built, *,
          attempt: int) -> Applied:
    """Apply ``built`` as transaction number ``attempt`` of this issue.

    The package is applied as it is on disk now (the gate may have waited a long time for the
    operator), and the target checks it against the digest taken when it was built from the validated
    sandbox: a package changed in between is refused before the first change (``aborted``).

    Raises: StateError (the journal cannot be written), TransportError before the first change,
    FixPackageError (the saved package no longer loads: edited or corrupt; nothing was started).
    A failure after the first change is the result's status (``rolled_back`` ...), never an exception.
    """
    app, session, transport, probes = ctx.app, ctx.session, ctx.transport, ctx.probes
    validated_sha256 = built.package.package_sha256
    package = FixPackage.load(built.directory)
    # What passed on the target at detection must pass after the apply. Not measured again here: the
    # package's preconditions (checked before the first change) prove the target's files are still
    # those captured, and a probe that has failed since makes the validation fail: the safe side.
    target_passing = set(ctx.passing)

    def validate_on_target() -> bool:
        report = Validator(transport, probes, ctx.watch,
                           stable_period_s=TARGET_STABLE_PERIOD_S, load=False,
                           side_layers="start").validate(
            issue, work.component, target_passing)
        session.write_json(Evidence.TARGET_VALIDATION.file(issue.component), report.as_dict())
        if not report.passed:
            # The file above is the last round's; a failure must stay readable after a retry's round
            # has written its own (it decides the rollback and the strategy excluded next).
            session.event(Stage.APPLY, "target_validation_failed", failed=[
                f"{layer.name}: {check.name}: {check.detail}"[:500]
                for layer in report.layers for check in layer.failed_checks][:20] or [
                f"{layer.name}: {layer.detail}"[:500] for layer in report.layers if not layer.passed])
        return report.passed

    store = TransactionStore(app.state)
    # One backup per transaction: a retry in the same session applies another package.
    txn_id = new_txn_id()
    backup_dir = ensure_private_dir(app.settings.state_dir / "backups" / session.id
                                    / f"{issue.component}-{txn_id}")
    txn = store.create(txn_id=txn_id,
        package_id=package.id, package_dir=str(built.directory), target=str(ctx.spec), session_id=session.id,
        component=issue.component, issue_id=issue.fingerprint, strategy=winner.strategy,
        backup_dir=str(backup_dir), ops_total=len(package.operations),
        reboot_required=package.reboot_required, attempt=attempt)
    # What "verified" means for this fix, durable before the first change: recovery after a crash, and
    # the verification after a reboot (possibly by another process), check exactly this.
    needs_reboot = package.reboot_required
    plan = VerifyPlan(tuple(sorted({issue.probe} | target_passing)),
                      _boot_fallback(ctx, txn.id) if needs_reboot else None,
                      boot_id(transport) if needs_reboot else None, ctx.watch.components,
                      ctx.watch.baseline_units, ctx.watch.baseline_modes)
    record_plan(store, txn.id, plan)
    with session.stage(Stage.APPLY) as st:
        # The run's agent server on the target, with the apply's per-operation timeout.
        apply_agent = ctx.agent.sharing(timeout=app.settings.repair.apply_op_timeout_s)
        try:
            result = apply_package(package, apply_agent, transport, backup_dir=backup_dir, session=session,
                                   journal=Journal(store, txn, package.operations),
                                   validate=validate_on_target, needs_reboot=needs_reboot,
                                   validated_sha256=validated_sha256)
        finally:
            apply_agent.close()
        session.write_json(Evidence.APPLY.file(issue.component), result.as_dict())
        st.detail = f"{result.status}; transaction {txn.id}; backup in {backup_dir}"
    _audit(ctx, issue, txn.id, result.status, winner.strategy)
    if not result.is_target_untouched:
        # The target's verdict on the fix the VM validated, for the same fault signature: a rollback
        # (an operation or the validation failed on the target) is the VM's prediction failing. The
        # verification after a reboot finds the signature again through this row's transaction.
        OutcomeStore(app.state).record(winner.strategy, succeeded=result.is_applied, stage=STAGE_TARGET,
                                       target=str(ctx.spec), txn_id=txn.id,
                                       signature=signature_of(ctx, work, issue, winner.diagnosis))
    return Applied(result.status, store.get(txn.id), plan, needs_reboot)


def _audit(ctx: RunContext, issue: Issue, txn_id: str, status: ApplyStatus, strategy: str) -> None:
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
    with ctx.session.stage(Stage.BOOT_FALLBACK) as st:
        ctx.app.vms.snapshot(ctx.spec.name, name, "vmrepair: before applying a fix that needs a reboot")
        st.detail = f"snapshot {name} of {ctx.spec}"
    return name


def drop_fallback(ctx: RunContext, snapshot: str) -> None:
    """The fix is verified (or needs no boot): the boot fallback is no longer needed."""
    try:
        ctx.app.vms.delete_snapshot(ctx.spec.name, snapshot)
    except VmRepairError as exc:
        ctx.session.event(Stage.BOOT_FALLBACK, "not_deleted", snapshot=snapshot, error=exc.message)
