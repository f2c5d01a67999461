"""`vmrepair watch list [--target T] [--json]`: every component vmrepair watches, where it came from
(discovered on the target, configured in ``watch:``, recorded in the baseline, built in), whether it
is vital, and its probes. Without ``--target`` only the configured components are listed (nothing is
discovered without a target). Read-only on the target; discovery is cached in the state store.

`vmrepair watch gate install|remove UNIT`: gate a service's start on vmrepair's pre-start checks
(:mod:`orchestrator.cli.gate`).

Exit codes: 0; errors as in `vmrepair --help` (2 bad target or config, 5 target unreachable, ...).
"""

from __future__ import annotations

import argparse

from orchestrator.app import App
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.gate import register_watch_verbs
from orchestrator.cli.output import emit_json, info, table
from orchestrator.detect import Detector
from orchestrator.discover.resolve import Resolution, resolve_for, watch_summary
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.base import Transport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("watch", help="show what vmrepair watches on a target")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="every watched component, its origin and probes")
    listing.add_argument("--target",
                         help="local, vm:NAME or ssh://[user@]host[:port] (discovers its services)")
    listing.set_defaults(handler=cmd_list)
    register_watch_verbs(verbs)


def cmd_list(app: App, args: argparse.Namespace) -> int:
    if args.target is None:
        resolution = Resolution(app.settings.watch)
        probes = _probe_names(resolution, app.local)
        target = "(configured)"
    else:
        spec = parse_target(args.target)
        target = str(spec)
        with open_target(app, spec) as transport:
            agent = remote_agent(transport)
            try:
                resolution = resolve_for(app.settings, app.state, spec.slug, transport, agent)
                probes = _probe_names(resolution, transport)
            finally:
                agent.cleanup()
                agent.close()
    if args.json:
        emit_json({"target": target, **watch_summary(resolution),
                   "probes": {c.name: probes.get(c.name, []) for c in resolution.watch.components}})
        return 0
    table(f"components watched on {target}", ["component", "origin", "vital", "units", "probes"],
          [[c.name, c.origin, "vital" if c.vital else "optional", " ".join((*c.units, *c.sockets)),
            " ".join(probes.get(c.name, []))] for c in resolution.watch.components])
    if resolution.absent:
        info(f"configured but not on {target} (no issue is raised for them): {', '.join(resolution.absent)}")
    for note in resolution.notes:
        info(f"note: {note}")
    return 0


def _probe_names(resolution: Resolution, transport: Transport) -> dict[str, list[str]]:
    # Planning probes runs nothing on the target: neither the transport nor the agent is called.
    detector = Detector(resolution.watch, transport, remote_agent(transport))
    names: dict[str, list[str]] = {}
    for probe in detector.probe_names:
        names.setdefault(detector.owner_of(probe), []).append(probe)
    return names
