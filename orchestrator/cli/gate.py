"""`vmrepair gate UNIT`: the start gate a unit's ``ExecStartPre=`` runs (:mod:`orchestrator.gate`), and
`vmrepair watch gate install|remove UNIT`, which write and remove that drop-in.

``gate`` loads its settings itself (``settings_free``): an unreadable config is the gate's own
failure, decided by ``gate.on_error`` (default allow), never a refused start by accident. It prints
one line on stderr, which journald files under the unit, and writes ``gate_allowed`` or
``gate_refused`` to the audit log. It runs on ``local`` only: it is the host asking about itself.

Exit codes of ``gate``: 0 allow the start; 1 refused, a pre-start check failed; 2 refused, the gate
itself failed and ``gate.on_error`` is ``refuse``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from orchestrator.app import App
from orchestrator.audit.sink import AuditSink
from orchestrator.cli.detect import remote_agent
from orchestrator.cli.output import info
from orchestrator.config.gate import GateSettings
from orchestrator.config.settings import Settings, load_settings
from orchestrator.discover.resolve import resolve_for
from orchestrator.errors import VmRepairError
from orchestrator.gate import Verdict, decide, evaluate, install_gate, record_verdict, remove_gate
from orchestrator.gate.decide import failure
from orchestrator.gate.dropin import gated_unit
from orchestrator.targets.spec import parse_target
from orchestrator.transport.base import Transport

EXIT_ALLOW = 0
EXIT_REFUSED = 1
EXIT_GATE_FAILED = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("gate", help="decide whether UNIT may start (its ExecStartPre=)")
    parser.add_argument("unit", metavar="UNIT", help="the service about to start, e.g. nginx.service")
    parser.set_defaults(handler=cmd_gate, settings_free=True)


def register_watch_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``watch gate install|remove UNIT`` (called by :mod:`orchestrator.cli.watch`)."""
    parser = verbs.add_parser("gate", help="gate a service's start on vmrepair's pre-start checks")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="write UNIT.d/50-vmrepair-gate.conf and reload systemd")
    install.add_argument("unit", metavar="UNIT")
    install.set_defaults(handler=cmd_install)
    remove = actions.add_parser("remove", help="remove the gate drop-in of UNIT and reload systemd")
    remove.add_argument("unit", metavar="UNIT")
    remove.set_defaults(handler=cmd_remove)


def cmd_gate(_app: object, args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except VmRepairError as exc:
        # Without settings there is no gate.on_error to ask: its default decides.
        verdict = failure(args.unit, f"settings: {exc.message}", GateSettings().on_error)
        return report(verdict, sys.stderr)
    app = App(settings)
    code = gate_command(args.unit, settings, evaluate=lambda unit: _evaluate_local(app, unit),
                        audit=app.quiet_audit, stderr=sys.stderr)
    if code.is_abandoned:
        # The evaluation still runs on a thread (and maybe in a child process): waiting for it at
        # interpreter exit would hold the start past the deadline the gate promises.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code.exit_code)
    app.close()
    return code.exit_code


@dataclass(frozen=True)
class GateOutcome:
    """The exit code, and whether the evaluation was abandoned past the deadline."""

    exit_code: int
    is_abandoned: bool = False


def gate_command(unit: str, settings: Settings, *, evaluate: Callable[[str], Verdict], audit: AuditSink,
                 stderr: TextIO) -> GateOutcome:
    """Decide for ``unit`` under ``settings.gate``, audit the verdict, print its line; never raises."""
    gate = settings.gate
    try:
        name = gated_unit(unit)
    except VmRepairError as exc:
        verdict = failure(unit, exc.message, gate.on_error)
    else:
        verdict = decide(name, lambda: evaluate(name), deadline_s=gate.deadline_s, on_error=gate.on_error)
    record_verdict(audit, verdict)
    return GateOutcome(report(verdict, stderr), verdict.is_abandoned)


def report(verdict: Verdict, stderr: TextIO) -> int:
    """Print the one journal line and return the exit code."""
    word = "allowing" if verdict.allowed else "refusing"
    line = f"vmrepair gate: {word} the start of {verdict.unit}: {verdict.reason} ({verdict.elapsed_s:.2f} s)"
    stderr.write(" ".join(line.split()) + "\n")  # one line, whatever the probes' summaries hold
    stderr.flush()
    if verdict.allowed:
        return EXIT_ALLOW
    return EXIT_GATE_FAILED if verdict.error is not None else EXIT_REFUSED


def _evaluate_local(app: App, unit: str) -> Verdict:
    transport = app.local
    agent = remote_agent(transport)
    try:
        resolution = resolve_for(app.settings, app.state, parse_target("local").slug, transport, agent)
        return evaluate(resolution.watch, unit, transport, agent)
    finally:
        agent.cleanup()
        agent.close()


def cmd_install(app: App, args: argparse.Namespace) -> int:
    path = install_on(app, app.local, args.unit)
    info(f"{path} written; systemd reloaded: each start of {gated_unit(args.unit)} now asks `vmrepair gate`")
    return 0


def cmd_remove(app: App, args: argparse.Namespace) -> int:
    path = remove_on(app, app.local, args.unit)
    if path is None:
        info(f"{gated_unit(args.unit)} has no vmrepair gate; nothing changed")
        return 0
    info(f"{path} removed; systemd reloaded")
    return 0


def install_on(app: App, transport: Transport, unit: str) -> Path:
    """Install the gate of ``unit`` where the settings say, reloading systemd through ``transport``
    (this host's in the CLI); audited as ``gate_installed``.

    Raises:
        ConfigError, StateError, CommandFailedError, TransportError: as :func:`install_gate`.
    """
    gate = app.settings.gate
    path = install_gate(transport, unit, unit_dir=gate.unit_dir, command=gate.command)
    app.quiet_audit.record("gate_installed", component=gated_unit(unit), status="ok",
                           details={"path": str(path), "command": str(gate.command)}, durable=True)
    return path


def remove_on(app: App, transport: Transport, unit: str) -> Path | None:
    """Remove the gate of ``unit`` (None: there was none); audited as ``gate_removed``.

    Raises:
        ConfigError, StateError, CommandFailedError, TransportError: as :func:`remove_gate`.
    """
    path = remove_gate(transport, unit, unit_dir=app.settings.gate.unit_dir)
    if path is not None:
        app.quiet_audit.record("gate_removed", component=gated_unit(unit), status="ok",
                               details={"path": str(path)}, durable=True)
    return path
