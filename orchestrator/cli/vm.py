"""`vmrepair vm up|exec|snapshot|revert|snapshots|destroy|list|reap`."""

from __future__ import annotations

import argparse
import sys

from orchestrator.app import App
from orchestrator.cli.args import seconds
from orchestrator.cli.output import emit_json, info, table, warning
from orchestrator.errors import VmRepairError
from orchestrator.transport.base import DEFAULT_MAX_OUTPUT

#: Exit code of `vm exec` when the command could not be run at all (as ssh(1) does).
EXEC_TRANSPORT_FAILURE = 255


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vm = sub.add_parser("vm", help="manage vmrepair's VMs")
    vsub = vm.add_subparsers(dest="vm_cmd", required=True,
                             metavar="{up,exec,snapshot,revert,snapshots,destroy,list,reap}")
    up = vsub.add_parser("up", help="clone the template, boot, return when SSH answers")
    up.add_argument("name")
    up.add_argument("--template", help="template name (default from config)")
    up.add_argument("--boot-timeout", type=seconds(0, 3600, low_included=False),
                    help="seconds to wait for SSH (default from config)")
    up.set_defaults(handler=cmd_up)
    ex = vsub.add_parser("exec", help="run a command in the VM, streaming its output")
    ex.add_argument("name")
    ex.add_argument("--timeout", type=seconds(0, 86400, low_included=False),
                    help="wall-clock deadline in seconds")
    ex.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    ex.set_defaults(handler=cmd_exec)
    for verb, helptext, handler in (
        ("snapshot", "take an internal snapshot (disk + memory)", cmd_snapshot),
        ("revert", "revert to a snapshot", cmd_revert),
    ):
        p = vsub.add_parser(verb, help=helptext)
        p.add_argument("name")
        p.add_argument("snapshot")
        p.set_defaults(handler=handler)
    snaps = vsub.add_parser("snapshots", help="list a VM's snapshots")
    snaps.add_argument("name")
    snaps.set_defaults(handler=cmd_snapshots)
    destroy = vsub.add_parser("destroy", help="stop, undefine and delete the overlay")
    destroy.add_argument("name")
    destroy.set_defaults(handler=cmd_destroy)
    vsub.add_parser("list", help="list vmrepair's VMs").set_defaults(handler=cmd_list)
    vsub.add_parser("reap", help="remove vmrepair's own leftovers").set_defaults(handler=cmd_reap)


def cmd_up(app: App, args: argparse.Namespace) -> int:
    info(f"booting {args.name} (this takes ~20 s under TCG)...")
    result = app.vms.up(args.name, args.template, boot_timeout=args.boot_timeout)
    if args.json:
        emit_json({"name": result.name, "ssh_port": result.ssh_port,
                   "boot_seconds": round(result.boot_seconds, 2), "accel": result.accel})
    else:
        info(f"{result.name} is up: SSH on 127.0.0.1:{result.ssh_port} "
             f"after {result.boot_seconds:.1f} s ({result.accel})")
    return 0


def cmd_exec(app: App, args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        info("error: vm exec needs a command: vmrepair vm exec NAME -- CMD [ARG...]")
        return 2
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}

    def stream(name: str, chunk: bytes) -> None:
        if not args.json:
            streams[name].write(chunk)
            streams[name].flush()

    with app.vms.transport(args.name) as transport:
        result = transport.run(argv, timeout=args.timeout or app.settings.ssh.command_timeout_s,
                               on_output=stream, max_output=DEFAULT_MAX_OUTPUT)
    if args.json:
        emit_json({"exit_status": result.exit_status, "stdout": result.stdout_text,
                   "stderr": result.stderr_text, "duration_s": round(result.duration_s, 3),
                   "truncated": result.is_truncated})
    # A remote exit status outside 0..255 (e.g. -1: killed by a signal) maps to ssh's 255.
    return result.exit_status if 0 <= result.exit_status <= 255 else EXEC_TRANSPORT_FAILURE


def cmd_snapshot(app: App, args: argparse.Namespace) -> int:
    app.vms.snapshot(args.name, args.snapshot)
    _done(args, {"name": args.name, "snapshot": args.snapshot, "action": "created"})
    return 0


def cmd_revert(app: App, args: argparse.Namespace) -> int:
    app.vms.revert(args.name, args.snapshot)
    _done(args, {"name": args.name, "snapshot": args.snapshot, "action": "reverted"})
    return 0


def cmd_snapshots(app: App, args: argparse.Namespace) -> int:
    snaps = app.vms.snapshots(args.name)
    if args.json:
        emit_json({"name": args.name, "snapshots": [
            {"name": s.name, "created": s.created, "current": s.is_current} for s in snaps]})
    else:
        table(f"snapshots of {args.name}", ["name", "created", "current"],
              [[s.name, s.created, "*" if s.is_current else ""] for s in snaps])
    return 0


def cmd_destroy(app: App, args: argparse.Namespace) -> int:
    app.vms.destroy(args.name)
    _done(args, {"name": args.name, "action": "destroyed"})
    return 0


def cmd_list(app: App, args: argparse.Namespace) -> int:
    vms = app.vms.list()
    if args.json:
        emit_json({"vms": [{"name": v.name, "state": v.state, "template": v.template,
                            "ssh_port": v.ssh_port, "ephemeral": v.ephemeral, "stale": v.is_stale}
                           for v in vms]})
    else:
        table("vmrepair VMs", ["name", "state", "template", "ssh", "ephemeral", "stale"],
              [[v.name, v.state, v.template, f"127.0.0.1:{v.ssh_port}", v.ephemeral, v.is_stale]
               for v in vms])
    return 0


def cmd_reap(app: App, args: argparse.Namespace) -> int:
    """Every hypervisor: the local one, then each configured remote one (one that cannot be reached is
    reported, and the others are still reaped; the exit status is then 1)."""
    removed: list[str] = []
    unreachable: dict[str, str] = {}
    for hypervisor, manager in app.vm_managers():
        try:
            removed.extend(manager().reap())
        except VmRepairError as exc:
            if not hypervisor:
                raise
            unreachable[hypervisor] = exc.message
    if args.json:
        emit_json({"removed": removed, "unreachable": unreachable})
    else:
        info(f"removed: {', '.join(removed)}" if removed else "nothing to reap")
        for hypervisor, why in unreachable.items():
            warning(f"hypervisor {hypervisor} not reaped: {why}")
    return 1 if unreachable else 0


def _done(args: argparse.Namespace, payload: dict[str, object]) -> None:
    if args.json:
        emit_json(payload)
    else:
        info(" ".join(str(v) for v in payload.values()))
