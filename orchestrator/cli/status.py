"""`vmrepair status [--json]`: ask the running daemon (over its socket) how it and its target are.

Uses the socket of ``daemon.socket`` in config.yaml, or ``$VMREPAIR_SOCKET``. Exit codes: 0 when the
daemon is ready, 1 when it runs but is not ready (start-up recovery running or failed), 16 when no
daemon answers (the message says how to start one).
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.app import App
from orchestrator.cli.output import emit_json, info, table
from orchestrator.daemon.client import DaemonClient
from orchestrator.daemon.socketpath import socket_path

EXIT_NOT_READY = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="show the running daemon's health, readiness and issues")
    parser.set_defaults(handler=cmd_status)


def cmd_status(app: App, args: argparse.Namespace) -> int:
    """Raises: DaemonError: no daemon answers on the socket, or it refused us."""
    client = DaemonClient(socket_path(app.settings.daemon))
    # One deadline for the three answers: `vmrepair status` takes at most client.timeout in all.
    deadline = client.deadline()
    _, health = client.get("/health", deadline=deadline)
    _, ready = client.get("/ready", deadline=deadline)
    _, issues = client.get("/issues", deadline=deadline)
    is_ready = bool(ready.get("ready"))
    if args.json:
        emit_json({"socket": str(client.path), "health": health, "ready": ready, "issues": issues})
    else:
        _show(health, ready, issues)
    return 0 if is_ready else EXIT_NOT_READY


def _show(health: dict[str, Any], ready: dict[str, Any], issues: dict[str, Any]) -> None:
    info(f"daemon: {health.get('status')}, up {_duration(health.get('uptime_s'))} "
         f"(since {health.get('started_at')})")
    state = "yes" if ready.get("ready") else "NO"
    info(f"ready: {state} - {ready.get('detail')} (policy {ready.get('policy')}, "
         f"target {ready.get('target')})")
    _show_mode(ready)
    last = issues.get("last_detection")
    if not isinstance(last, dict):
        info("last detection: none yet")
        return
    info(f"last detection: {last.get('at')}, {last.get('probes')} probes in {last.get('duration_s')} s, "
         f"{last.get('issues')} issue(s), {len(last.get('unavailable') or [])} probe(s) unavailable")
    found = issues.get("issues") or []
    if found:
        table("issues", ["component", "kind", "severity", "state", "summary"],
              [[str(i.get(k)) for k in ("component", "kind", "severity", "state", "summary")]
               for i in found])


def _show_mode(ready: dict[str, Any]) -> None:
    """Full, reduced (an optional component does not work, or a vital one is stubbed) or degraded."""
    mode = ready.get("mode")
    if not isinstance(mode, str):
        return   # a daemon of an older version
    rows = [n for n in ready.get("not_working") or [] if isinstance(n, dict)]
    what = {"full": "every component works", "reduced": "running with reduced features",
            "degraded": "a vital component does not work"}.get(mode, "")
    info(f"mode: {mode}" + (f" - {what}" if what else ""))
    if rows:
        table("not working", ["component", "vital", "state", "why"],
              [[str(n.get("component")), "yes" if n.get("vital") else "no", str(n.get("state")),
                str(n.get("why"))] for n in rows])


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
