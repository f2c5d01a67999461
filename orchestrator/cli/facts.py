"""`vmrepair facts --target T [--json]`: what vmrepair reads about a target before it mirrors it in a
troubleshooting VM (OS, architecture, apt sources, packages, masked and enabled units, and for the watched
components the files their units run that no package owns). Read-only.

Exit codes: 0; errors as in `vmrepair --help` (2 bad target or config, 5 target unreachable, ...).
"""

from __future__ import annotations

import argparse

from orchestrator.app import App
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.output import emit_json, info, table
from orchestrator.discover.resolve import resolve_for
from orchestrator.facts import read_facts
from orchestrator.targets.spec import open_target, parse_target


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("facts", help="show what a target is made of, as vmrepair mirrors it")
    parser.add_argument("--target", required=True, help="local, vm:NAME or ssh://[user@]host[:port]")
    parser.set_defaults(handler=cmd_facts)


def cmd_facts(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            watch = resolve_for(app.settings, app.state, spec.slug, transport, agent).watch
            facts = read_facts(transport, agent, list(watch.components))
        finally:
            agent.cleanup()
            agent.close()
    if args.json:
        emit_json({"target": str(spec), **facts.as_dict()})
        return 0
    info(f"{spec}: {facts.summary()}")
    if facts.sources:
        table("apt sources", ["type", "uri", "suite", "components", "file"],
              [[s.type, s.uri, s.suite, " ".join(s.components), s.file] for s in facts.sources])
    special = [u for u in facts.unit_files if u.state == "masked"]
    if special:
        table("masked units", ["unit"], [[u.unit] for u in special])
    if facts.held:
        table("held packages", ["package", "version"],
              [[p.name, p.version] for p in facts.packages if p.held])
    broken = [p for p in facts.packages if not p.is_installed]
    if broken:
        table("packages not fully installed", ["package", "version", "dpkg status"],
              [[p.name, p.version, p.status] for p in broken])
    if facts.unpackaged:
        table("files the watched services run that no package owns", ["unit", "path", "from"],
              [[u.unit, u.path, u.source] for u in facts.unpackaged])
    for note in facts.notes:
        info(f"note: {note}")
    return 0
