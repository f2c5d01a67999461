"""`vmrepair run --target T [--dry-run] [--yes] [--json]`.

Exit codes: 0 healthy or repaired (repaired = verified on the target, after its reboot when the fix
needs one); 10 not_repaired (including a dry run that found a validated fix, an operator who declined,
and a spent attempt budget); 11 not_reproduced; 12 error; 20 pending_reboot (applied, verified as far
as possible, waiting for its reboot by the window or prompt policy). 21 (interrupted) is never exited
with: it is what the next start records in session.json for a run that was killed.
"""

from __future__ import annotations

import argparse
import sys

from orchestrator.app import App
from orchestrator.cli.args import seconds
from orchestrator.cli.output import emit_json, info
from orchestrator.errors import ConfigError
from orchestrator.pipeline.run import RunOptions, RunOutcome, run_repair

MAX_ATTEMPTS = 10
#: The same bounds as repair.stable_period_s and reboot.notice_s in config.yaml.
MAX_STABLE_PERIOD_S = 3600
MAX_REBOOT_NOTICE_S = 7 * 86400


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="detect, reproduce in a VM, repair, validate and apply")
    run.add_argument("--target", required=True, help="local | vm:NAME | ssh://[user@]host[:port]")
    run.add_argument("--dry-run", action="store_true",
                     help="stop before touching the target; show what would be applied")
    run.add_argument("--yes", action="store_true", help="apply a validated fix without asking")
    run.add_argument("--stable-period", type=seconds(0, MAX_STABLE_PERIOD_S), metavar="SECONDS",
                     help="stability re-check period in the VM (default from config)")
    run.add_argument("--reboot-policy", choices=("automatic", "window", "prompt"),
                     help="for a fix that needs a reboot (default from config: reboot.policy); "
                     "`automatic` here is also consent to reboot a target without a boot fallback")
    run.add_argument("--reboot-notice", type=seconds(0, MAX_REBOOT_NOTICE_S), metavar="SECONDS",
                     help="notice period before an automatic reboot (default: reboot.notice_s)")
    run.add_argument("--attempts", type=int, metavar="N",
                     help="strategies to apply at most per issue across rollbacks (default: "
                     "reboot.attempt_budget)")
    run.set_defaults(handler=cmd_run, takes_lock=True)


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        info("not a terminal and --yes not given: not applying")
        return False
    info(question + "[y/N] ")
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def print_outcome(outcome: RunOutcome, *, as_json: bool) -> None:
    if as_json:
        emit_json(outcome.as_dict())
        return
    info(f"session {outcome.session.id}: {outcome.status}")
    for issue in outcome.issues:
        info(f"  issue {issue.id}: {issue.summary}")
    for detail in outcome.details:
        info(f"  {detail['component']}: {detail['status']}: {detail['summary']}")
    if outcome.summary and not outcome.details:
        info(f"  {outcome.summary}")
    if outcome.report:
        info(f"report: {outcome.report}")


def cmd_run(app: App, args: argparse.Namespace) -> int:
    if args.attempts is not None and not 1 <= args.attempts <= MAX_ATTEMPTS:
        raise ConfigError(f"--attempts {args.attempts}: must be between 1 and {MAX_ATTEMPTS}")
    options = RunOptions(dry_run=args.dry_run, assume_yes=args.yes, confirm=_ask,
                         stable_period_s=args.stable_period, reboot_policy=args.reboot_policy,
                         reboot_notice_s=args.reboot_notice, attempt_budget=args.attempts)
    outcome = run_repair(app, args.target, options)
    print_outcome(outcome, as_json=args.json)
    return outcome.exit_code
