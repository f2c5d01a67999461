"""`vmrepair baseline --target T [--force]`: record a known-good baseline of a healthy target.

Runs detect first and refuses (exit 1, naming the failing probes) when it finds critical issues: a
baseline of a broken state would later be "restored" as if it were good. ``--force`` records anyway.
Prints where the baseline went; with ``--json``, ``{"recorded": bool, ...}`` on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses

from orchestrator.app import App
from orchestrator.baseline import BaselineAgent, record_baseline
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.output import emit_json, info
from orchestrator.config.settings import Settings
from orchestrator.detect import Detector
from orchestrator.discover.resolve import resolve_for
from orchestrator.targets.spec import TargetSpec, open_target, parse_target
from orchestrator.transport.base import Transport

EXIT_REFUSED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("baseline", help="record a known-good baseline of a healthy target")
    parser.add_argument("--target", required=True, help="local, vm:NAME or ssh://[user@]host[:port]")
    parser.add_argument("--force", action="store_true",
                        help="record even when detect finds critical issues on the target")
    parser.set_defaults(handler=cmd_baseline)


def cmd_baseline(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            # The baseline records every component of this target, discovered ones included.
            watch = resolve_for(app.settings, app.state, spec.slug, transport, agent).watch
            return check_and_record(dataclasses.replace(app.settings, watch=watch), spec, transport,
                                    agent, force=args.force, as_json=args.json)
        finally:
            agent.cleanup()


def check_and_record(
    settings: Settings, spec: TargetSpec, transport: Transport, agent: BaselineAgent,
    *, force: bool, as_json: bool,
) -> int:
    """Detect, then record unless critical issues were found (or ``force``); returns the exit code.

    Raises:
        StateError, TransportError: as :func:`~orchestrator.baseline.record_baseline`.
    """
    report = Detector(settings.watch, transport, agent).run()
    critical = report.critical_issues
    failing = list(dict.fromkeys(i.probe for i in critical))
    if critical and not force:
        if as_json:
            emit_json({"recorded": False, "target": str(spec), "failing_probes": failing,
                       "issues": [i.as_dict() for i in critical]})
        info(f"error: {spec} is not healthy, refusing to record a baseline; failing probes: "
             f"{', '.join(failing)}")
        info("  remedy: repair the target first (`vmrepair detect --target "
             f"{spec}` lists the issues), or pass --force to record this state as known-good")
        return EXIT_REFUSED
    if critical:
        info(f"warning: recording despite failing probes (--force): {', '.join(failing)}")
    baseline = record_baseline(settings, spec.slug, transport, agent, settings.watch)
    if as_json:
        emit_json({"recorded": True, "forced": bool(critical), **baseline.as_dict()})
    else:
        counts = baseline.counts
        info(f"baseline {baseline.name} of {spec} recorded in {baseline.directory}: "
             f"{counts.get('entries', 0)} paths, {counts.get('placeholders', 0)} too large to keep, "
             f"{counts.get('packages', 0)} packages, {counts.get('units', 0)} units")
    return 0
