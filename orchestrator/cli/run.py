"""`vmrepair run --target T [--dry-run] [--yes] [--json]`.

Exit codes: 0 healthy or repaired (repaired = verified on the target); 10 not_repaired (including a
dry run that found a validated fix, and an operator who declined); 11 not_reproduced; 12 error.
"""

from __future__ import annotations

import argparse
import sys

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info
from orchestrator.pipeline.run import RunOptions, RunOutcome, run_repair


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="detect, reproduce in a VM, repair, validate and apply")
    run.add_argument("--target", required=True, help="local | vm:NAME | ssh://user@host[:port]")
    run.add_argument("--dry-run", action="store_true",
                     help="stop before touching the target; show what would be applied")
    run.add_argument("--yes", action="store_true", help="apply a validated fix without asking")
    run.add_argument("--stable-period", type=float, metavar="SECONDS",
                     help="stability re-check period in the VM (default from config)")
    run.set_defaults(handler=cmd_run)


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
    options = RunOptions(dry_run=args.dry_run, assume_yes=args.yes, confirm=_ask,
                         stable_period_s=args.stable_period)
    outcome = run_repair(app, args.target, options)
    print_outcome(outcome, as_json=args.json)
    return outcome.exit_code
