"""`vmrepair doctor`."""

from __future__ import annotations

import argparse

from orchestrator.app import App
from orchestrator.cli.output import emit_json, out_console
from orchestrator.doctor.checks import run_checks


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doc = sub.add_parser("doctor", help="check that vmrepair can work on this machine")
    doc.set_defaults(handler=cmd_doctor)


def cmd_doctor(app: App, args: argparse.Namespace) -> int:
    results = run_checks(app)
    ok = all(r.ok for r in results if r.vital)
    if args.json:
        emit_json({"ok": ok, "checks": [r.as_dict() for r in results]})
    else:
        for r in results:
            mark = "[green]ok[/]" if r.ok else ("[red]FAIL[/]" if r.vital else "[yellow]warn[/]")
            kind = "vital" if r.vital else "optional"
            out_console.print(f"{mark:<18} {r.name:<13} ({kind}) ", end="")
            out_console.print(r.detail, markup=False)
            if r.remedy:
                out_console.print(f"{'':>6}remedy: {r.remedy}", markup=False)
        out_console.print("[bold]ready[/]" if ok else "[bold red]not ready[/]: a vital check failed")
    return 0 if ok else 1
