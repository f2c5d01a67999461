"""`vmrepair detect --target T`: run every probe of the watch config against a target, list the issues.

Exit codes: 0 when no issue was found, 1 when at least one was (warnings included); errors as in
`vmrepair --help` (2 bad target or config, 5 target unreachable, ...). Probes that cannot run on the
target (no systemd, no curl) are neither: they are listed in the results as unavailable.

With ``--json``: ``{"target": T, "issues": [...], "results": [...]}`` on stdout, issues sorted as
described in :mod:`orchestrator.detect.report` (critical first, causes before symptoms).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table
from orchestrator.detect import DetectionReport, Detector
from orchestrator.detect.answer_store import for_target
from orchestrator.discover.resolve import resolve_for
from orchestrator.metrics.detections import remember_detection
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.base import Transport

if TYPE_CHECKING:
    from orchestrator.agent.client import RemoteAgent

EXIT_HEALTHY = 0
EXIT_ISSUES = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("detect", help="probe a target and list its issues (exit 1 when any)")
    parser.add_argument("--target", required=True, help="local, vm:NAME or ssh://[user@]host[:port]")
    parser.set_defaults(handler=cmd_detect)


def remote_agent(transport: Transport) -> RemoteAgent:
    # Imported when a command needs it: `vmrepair --help` stays fast.
    from orchestrator.agent.client import RemoteAgent

    return RemoteAgent(transport)


def cmd_detect(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            resolution = resolve_for(app.settings, app.state, spec.slug, transport, agent)
            report = Detector(resolution.watch, transport, agent,
                              answers=for_target(app.settings.state_dir, spec.slug)).run()
        finally:
            agent.cleanup()
    remember_detection(app.settings.state_dir, spec.slug, str(spec), report.issues)
    if resolution.absent and not args.json:
        # Information, once: a configured component this host does not have is not an issue.
        info(f"not on {spec} (configured, no such unit; not watched): {', '.join(resolution.absent)}")
    return show_report(str(spec), report, as_json=args.json, absent=resolution.absent)


def show_report(target: str, report: DetectionReport, *, as_json: bool,
                absent: tuple[str, ...] = ()) -> int:
    """Print ``report`` (JSON on stdout, or a table of issues) and return the exit code."""
    if as_json:
        emit_json({"target": target, **report.as_dict(), "absent_components": list(absent),
                   "by_component": [{"component": primary.component, "primary": primary.probe,
                                     "related": [i.probe for i in related]}
                                    for primary, related in report.by_component]})
    elif report.issues:
        # One row per component: duplicates of one fault (a unit down, its port and its endpoint)
        # are one problem to a person; they are listed as related evidence.
        table(f"issues on {target}", ["component", "kind", "severity", "summary", "probe", "related"],
              [[p.component, str(p.kind), str(p.severity), p.summary, p.probe,
                " ".join(i.probe for i in related)] for p, related in report.by_component])
    else:
        info(f"no issues on {target} ({len(report.results)} probes)")
    if not as_json and report.unavailable:
        info(f"{len(report.unavailable)} probes could not run on {target}: "
             + ", ".join(r.probe for r in report.unavailable))
    return EXIT_ISSUES if report.issues else EXIT_HEALTHY
