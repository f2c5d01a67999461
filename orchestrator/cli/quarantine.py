"""`vmrepair quarantine list|release`: see and undo what vmrepair isolated on a target.

``list [--target T] [--all]`` shows the quarantines in force (``--all``: released ones too), exit 0.
``release NAME [--target T]`` puts the component back exactly as it was and checks its probes: exit 0
when they pass (or nothing could check it), 1 when it is back but unhealthy. A refused release (a
destination holds newer content, a quarantined copy was altered, NAME is not quarantined) exits 15
with the reason and the remedy, having changed nothing. The target defaults to ``local``; quarantines
live under the state dir's ``quarantine/`` on the target.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from orchestrator.agent.api import AgentApi
from orchestrator.app import App
from orchestrator.audit.log import AuditLog
from orchestrator.audit.sink import AuditSink
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.output import emit_json, info, table
from orchestrator.components.config import WatchConfig
from orchestrator.discover.resolve import resolve_for
from orchestrator.quarantine import QuarantineRecord, ReleaseResult, list_quarantined, release
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.base import Transport

TARGET_HELP = "local (default), vm:NAME or ssh://[user@]host[:port]"
EXIT_UNHEALTHY = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("quarantine", help="list or release components vmrepair isolated")
    qsub = parser.add_subparsers(dest="quarantine_cmd", required=True, metavar="{list,release}")
    lister = qsub.add_parser("list", help="show the quarantined components of a target")
    lister.add_argument("--target", default="local", help=TARGET_HELP)
    lister.add_argument("--all", action="store_true", help="include released quarantines (history)")
    lister.set_defaults(handler=cmd_list)
    releaser = qsub.add_parser("release", help="restore a quarantined component and verify it")
    releaser.add_argument("name", help="the component, as `quarantine list` names it")
    releaser.add_argument("--target", default="local", help=TARGET_HELP)
    # It changes the target: hold the state lock (and run start-up recovery) like `run` does.
    releaser.set_defaults(handler=cmd_release, takes_lock=True)


def audit_log(app: App) -> AuditSink:
    """The audit log of ``config.yaml``'s ``audit.path``, for commands that change a target."""
    return AuditLog(app.settings.audit.path)


def cmd_list(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            records = list_quarantined(agent, quarantine_root=str(app.settings.quarantine_dir),
                                       include_released=args.all)
        finally:
            agent.cleanup()
    return show_list(str(spec), records, as_json=args.json)


def cmd_release(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            watch = resolve_for(app.settings, app.state, spec.slug, transport, agent).watch
            result = release_on(app, transport, agent, args.name, watch=watch)
        finally:
            agent.cleanup()
    return show_release(str(spec), result, as_json=args.json)


def release_on(app: App, transport: Transport, agent: AgentApi, name: str, *,
               watch: WatchConfig | None = None) -> ReleaseResult:
    """Release ``name`` with ``watch`` (default: the settings' watch config) for the probes, and the
    settings' quarantine root.

    Raises:
        QuarantineError, TransportError, AuditError: as :func:`orchestrator.quarantine.release`.
    """
    return release(transport, agent, name, audit=audit_log(app), watch=watch or app.settings.watch,
                   quarantine_root=str(app.settings.quarantine_dir), notify=app.notifier)


def show_list(target: str, records: Sequence[QuarantineRecord], *, as_json: bool) -> int:
    if as_json:
        emit_json({"target": target, "quarantined": [r.as_dict() for r in records]})
    elif records:
        table(f"quarantined on {target}", ["component", "status", "since", "reason", "files",
                                           "units", "directory"],
              [[r.component, str(r.status), r.quarantined_at, r.reason,
                len(r.moved), ", ".join(u.unit for u in r.units), r.directory]
               for r in records])
    else:
        info(f"nothing is quarantined on {target}")
    return 0


def show_release(target: str, result: ReleaseResult, *, as_json: bool) -> int:
    code = EXIT_UNHEALTHY if result.is_verified is False else 0
    if as_json:
        emit_json({"target": target, **result.as_dict()})
        return code
    record = result.record
    info(f"released {record.component} on {target}: {len(result.restored)} file(s) moved back from "
         f"{record.directory}" + (f", {len(result.already_in_place)} already in place"
                                  if result.already_in_place else ""))
    info(result.outcome)
    return code
