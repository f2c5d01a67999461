"""`vmrepair playbook list|lint`: the playbook catalog, and checking a playbook file before installing it.

``list`` shows every playbook a repair can choose from: the shipped ones and the drop-ins of
``playbooks_dropin_dir`` (origin ``shipped``, ``drop-in`` or ``override``). ``lint FILE`` validates one
file with the loader the catalog uses and exits 0 with ``ok: N strategies``; an invalid file is
reported as ``file: key.path: message`` with exit code 2, like every config error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table
from orchestrator.playbooks.catalog import catalog_entries
from orchestrator.playbooks.loader import load_playbook


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    playbook = sub.add_parser("playbook", help="list the playbook catalog, check a playbook file")
    psub = playbook.add_subparsers(dest="playbook_cmd", required=True, metavar="{list,lint}")
    lst = psub.add_parser("list", help="the shipped and drop-in playbooks, with their origin")
    lst.set_defaults(handler=cmd_list)
    lint = psub.add_parser("lint", help="validate one playbook file (exit 0 when it would load)")
    lint.add_argument("file", type=Path, help="the playbook YAML file")
    lint.set_defaults(handler=cmd_lint)


def cmd_list(app: App, args: argparse.Namespace) -> int:
    entries = catalog_entries(app.settings)
    rows = [{"name": e.name, "origin": str(e.origin), "path": str(e.path),
             "strategies": len(e.playbook.strategies),
             "overrides": None if e.overrides is None else str(e.overrides)} for e in entries]
    if args.json:
        emit_json({"playbooks_dir": str(app.settings.playbooks_dir),
                   "dropin_dir": str(app.settings.playbooks_dropin_dir), "playbooks": rows})
        return 0
    table("playbooks", ["name", "origin", "strategies", "path"],
          [[r["name"], r["origin"], r["strategies"], r["path"]] for r in rows])
    info(f"drop-in directory: {app.settings.playbooks_dropin_dir}")
    return 0


def cmd_lint(app: App, args: argparse.Namespace) -> int:
    playbook = load_playbook(args.file)
    count = len(playbook.strategies)
    if args.json:
        emit_json({"file": str(args.file), "ok": True, "name": playbook.name, "strategies": count})
    else:
        info(f"ok: {count} strategies ({playbook.name}, {args.file})")
    return 0
