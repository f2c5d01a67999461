"""`vmrepair fleet stats [--json]`: what the recorded outcomes say per fault signature and strategy.

For each fault (its signature's readable parts: component kind / issue kind / cause, its OS release and
its fine id) and each strategy tried for it: validated in a troubleshooting VM, verified on the target
after applying, verified after the target's reboot, each as successes/tries. Reads the state store only
(a missing store reads as empty); exit 0.

The bundle commands (``fleet export|import|key``) live in :mod:`orchestrator.cli.fleet_bundle`, which
registers them into the same ``fleet`` parser.
"""

from __future__ import annotations

import argparse
import logging

from orchestrator.app import App
from orchestrator.cli.fleet_bundle import register_bundle_commands
from orchestrator.cli.output import emit_json, info, table
from orchestrator.fleet.stats import SignatureStats, concordance, shown
from orchestrator.state.outcomes import STAGE_REBOOT, STAGE_TARGET, STAGE_VM, OutcomeStore

log = logging.getLogger(__name__)

#: Characters of a fine signature id shown in the table (the JSON has all 16).
SHOWN_ID = 8


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = sub.add_parser("fleet", help="what outcomes say across faults and hosts")
    verbs = fleet.add_subparsers(dest="verb", required=True, metavar="VERB")
    stats = verbs.add_parser("stats", help="per fault signature and strategy: validated in a VM, verified "
                             "on the target, verified after its reboot")
    stats.set_defaults(handler=cmd_stats)
    register_bundle_commands(verbs)


def cmd_stats(app: App, args: argparse.Namespace) -> int:
    """Raises: StateCorruptError / StateError when the state store cannot be read."""
    stats = concordance(OutcomeStore(app.state_view).stage_tallies())
    if args.json:
        emit_json({"signatures": [s.as_dict() for s in stats]})
        return 0
    if not stats:
        info("no outcomes recorded yet")
        return 0
    table("vmrepair fleet stats", ["fault", "os", "signature", "strategy", "VM", "target", "after reboot"],
          [row for signature in stats for row in _rows(signature)])
    return 0


def _rows(signature: SignatureStats) -> list[list[str]]:
    rows = []
    for n, strategy in enumerate(signature.strategies):
        # The fault's columns only on its first line: the table reads as one block per fault.
        fault = [signature.label, signature.parts.get("os_release") or "—",
                 signature.signature[:SHOWN_ID] or "—"] if n == 0 else ["", "", ""]
        rows.append([*fault, strategy.strategy, shown(strategy.stages[STAGE_VM]),
                     shown(strategy.stages[STAGE_TARGET]), shown(strategy.stages[STAGE_REBOOT])])
    return rows
