"""`vmrepair doctor [--target T [--remediate]]`.

Without ``--target``: the orchestrator's own checks (can vmrepair work on this machine?), exit 1 when
a vital one fails. With ``--target``: boot diagnostics of the target's watched components, a table of
component, vital/optional, state, action taken, dependency score (with what lowered it) and what the
score decides (:mod:`orchestrator.bootdiag.verdict`): the severity of the component's issues and
whether the daemon may restart it blindly ("refused (why)" when its dependencies are broken); exit 1
when a vital component is still broken, missing or only stubbed. ``--remediate`` repairs broken vital
components at once (reinstall from the apt cache, restore from the baseline, or a stub unit) and
records each action in the audit log.
"""

from __future__ import annotations

import argparse
import dataclasses

from rich.text import Text

from orchestrator.app import App
from orchestrator.audit.sink import AuditSink, NullAuditSink
from orchestrator.bootdiag.result import NOT_WORKING
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.output import emit_json, info, out_console, table, visible
from orchestrator.cli.quarantine import audit_log
from orchestrator.discover.resolve import resolve_for
from orchestrator.doctor.checks import run_checks
from orchestrator.doctor.target import TargetDoctorReport, diagnose_target
from orchestrator.errors import ConfigError
from orchestrator.targets.spec import open_target, parse_target

EXIT_BROKEN = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doc = sub.add_parser("doctor", help="check that vmrepair can work on this machine, or (--target) "
                         "diagnose a target's components")
    doc.add_argument("--target", help="diagnose this target's components instead: local, vm:NAME or "
                     "ssh://[user@]host[:port]")
    doc.add_argument("--remediate", action=_Remediate, nargs=0, default=False,
                     help="with --target: repair broken vital components now (reinstall from the apt "
                     "cache, restore from the baseline, or a stub unit)")
    doc.set_defaults(handler=cmd_doctor)


class _Remediate(argparse.Action):
    """``--remediate`` changes the target, so it also takes the state lock (and runs start-up
    recovery) as `run` does; a plain diagnosis does not need the lock."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        namespace.remediate = True
        namespace.takes_lock = True


def cmd_doctor(app: App, args: argparse.Namespace) -> int:
    """Raises: ConfigError: --remediate without --target."""
    if args.target is not None:
        return cmd_doctor_target(app, args)
    if args.remediate:
        raise ConfigError("--remediate needs --target: it repairs a target's components",
                          remedy="vmrepair doctor --target local --remediate")
    results = run_checks(app)
    ok = all(r.ok for r in results if r.vital)
    if args.json:
        emit_json({"ok": ok, "checks": [r.as_dict() for r in results]})
    else:
        for r in results:
            mark, style = ("ok", "green") if r.ok else (("FAIL", "red") if r.vital else ("warn", "yellow"))
            kind = "vital" if r.vital else "optional"
            out_console.print(Text.assemble((f"{mark:<6}", style), f" {r.name:<13} ({kind}) ",
                                            visible(r.detail)))
            if r.remedy:
                out_console.print(f"{'':>6}remedy: {visible(r.remedy)}")
        if ok:
            out_console.print("ready", style="bold")
        else:
            out_console.print(Text.assemble(("not ready", "bold red"), ": a vital check failed"))
    return 0 if ok else 1


def cmd_doctor_target(app: App, args: argparse.Namespace) -> int:
    spec = parse_target(args.target)
    # A diagnosis only reads; the audit log is for what changes a target.
    audit: AuditSink = audit_log(app) if args.remediate else NullAuditSink()
    with open_target(app, spec) as transport:
        agent = remote_agent(transport)
        try:
            # Every component of this target, discovered ones included.
            watch = resolve_for(app.settings, app.state, spec.slug, transport, agent).watch
            report = diagnose_target(dataclasses.replace(app.settings, watch=watch), spec, transport,
                                     agent, remediate=args.remediate, audit=audit)
        finally:
            agent.cleanup()
    return show_diagnosis(report, as_json=args.json)


def show_diagnosis(report: TargetDoctorReport, *, as_json: bool) -> int:
    """Print ``report`` (JSON on stdout, or a table) and return the exit code."""
    diagnosis = report.diagnosis
    code = EXIT_BROKEN if diagnosis.has_broken_vital else 0
    if as_json:
        emit_json(report.as_dict())
        return code
    rows = []
    for c in diagnosis.components:
        state = str(c.state) if c.found is c.state else f"{c.found} -> {c.state}"
        lowered = "; ".join(f"-{f.points} {f.reason}" for f in c.dependencies.findings)
        verdict = c.verdict
        severity, restart = ("-", "-") if verdict is None else (
            str(verdict.severity), "allowed" if verdict.may_restart else f"refused ({verdict.reason})")
        rows.append([c.name, "vital" if c.vital else "optional", state,
                     c.action_summary, str(c.dependencies.score), lowered or "-", severity, restart])
    table(f"components of {report.target}",
          ["component", "kind", "state", "action taken", "deps", "lowered by", "severity", "restart"], rows)
    for c in diagnosis.components:
        if c.state in NOT_WORKING or c.actions:
            for problem in c.problems:
                info(f"{c.name}: {problem}")
            for action in c.actions:
                info(f"{c.name}: {action.kind} {action.status}: {action.detail}")
    info(f"baseline: {report.baseline}")
    if diagnosis.has_broken_vital:
        info("not ready: a vital component is still broken"
             + ("" if diagnosis.remediate else " (`--remediate` repairs vital components)"))
    return code
