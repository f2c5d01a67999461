"""Entry point of the `vmrepair` command.

Exit codes: 0 success; an error exits with its family's ``exit_code`` (orchestrator/errors.py: 2 bad
input or config, 3 image, 4 hypervisor, 5 transport, 6 state dir, 7 fix package, 8 apply, 9 pipeline,
13 reboot, 14 audit, 15 quarantine, 16 daemon, 17 fleet; 1 any other); 130 interrupted. Some commands have
codes of their own (`detect` 1 when it finds issues, `run` 10-12 and 20, `vm exec` the remote
command's status). The table users see is ``orchestrator/cli/helptext.py``: ``vmrepair --help`` shows
the error codes, ``vmrepair COMMAND --help`` the command's own, and so does the man page.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from orchestrator import __version__
from orchestrator.app import App
from orchestrator.apply.recovery import RecoveryReport, recover_on_start
from orchestrator.cli import (
    baseline,
    completion,
    config,
    daemon,
    demo,
    detect,
    doctor,
    facts,
    fixes,
    fleet,
    gate,
    image,
    log,
    playbook,
    prune,
    quarantine,
    reboot,
    run,
    sessions,
    status,
    vm,
    watch,
)
from orchestrator.cli.helptext import apply_help
from orchestrator.cli.output import emit_json, err_console, error, info, warning
from orchestrator.errors import BootError, ImageBuildError, LockHeldError, VmRepairError
from orchestrator.state.lock import StateLock

EXIT_INTERRUPTED = 130
#: Commands after which the metrics textfile is rewritten: those that detect or repair.
METRICS_COMMANDS = frozenset({"run", "detect"})


class _CommandParser(argparse.ArgumentParser):
    """Parser of every (sub)command: accepts --json/--debug after its own name as well.

    Nested subcommands (``vm list``) are built with this class too, because argparse gives a
    parser's subparsers its own class. The defaults are SUPPRESS so an option *not* repeated after
    the command does not reset one given before it (argparse copies a subparser's defaults over
    the values the parent parsed).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                          help="machine-readable output on stdout")
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show tracebacks and debug logs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmrepair",
        description="Reproduce host faults in disposable VMs and apply only verified fixes.",
    )
    parser.add_argument("--version", action="version", version=f"vmrepair {__version__}")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    for module in (doctor, image, vm, detect, facts, baseline, run, demo, sessions, fixes, reboot, daemon,
                   status, log, quarantine, playbook, watch, gate, completion, config, prune, fleet):
        module.register(sub)
    apply_help(parser)
    return parser


def _report_error(exc: VmRepairError, *, as_json: bool) -> None:
    details: dict[str, object] = {"error": type(exc).__name__, "message": exc.message}
    if exc.remedy:
        details["remedy"] = exc.remedy
    if isinstance(exc, BootError) and exc.serial_log:
        details["serial_log"] = exc.serial_log
    if isinstance(exc, LockHeldError):
        details["holder"] = exc.holder
    if isinstance(exc, ImageBuildError):
        details["step"] = exc.step
        if exc.log:
            details["log"] = exc.log
    if as_json:
        emit_json(details)
    # Messages quote files and keys ("within: [/etc/nginx]"): the output layer prints them as plain text.
    error(exc.message)
    for key in ("step", "log", "serial_log", "remedy"):
        if key in details:
            info(f"  {key}: {details[key]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # paramiko logs every refused banner while a guest boots as an ERROR with a traceback; the
        # transport maps those failures into our errors, so its own logging is noise unless debugging.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    if getattr(args, "parser_handler", None) is not None:
        # Commands that document the parser (completion, manpage) need neither config nor state.
        return _run_without_app(parser, args)
    app: App | None = None
    lock: StateLock | None = None
    try:
        if getattr(args, "settings_free", False):
            # `config check|show` explain a configuration that may not load: they read it themselves.
            return int(args.handler(None, args))
        app = App.from_env()
        if getattr(args, "takes_lock", False):
            lock = StateLock(app.settings.lock_path)
            lock.acquire(f"vmrepair {args.command}")
            args.recovery = _recover(app)
        code: int = args.handler(app, args)
    except VmRepairError as exc:
        if args.debug:
            err_console.print_exception()
        _report_error(exc, as_json=args.json)
        return exc.exit_code
    except KeyboardInterrupt:
        info("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if lock is not None:
            lock.release()
        if app is not None:
            if args.command in METRICS_COMMANDS:
                _write_metrics(app)
            app.close()
    return code


def _run_without_app(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        code: int = args.parser_handler(parser, args)
    except VmRepairError as exc:
        if args.debug:
            err_console.print_exception()
        _report_error(exc, as_json=args.json)
        return exc.exit_code
    return code


def _write_metrics(app: App) -> None:
    """Rewrite node_exporter's vmrepair.prom from the state the command left; never raises (a
    command's outcome never depends on metrics), also after the command failed."""
    from orchestrator.metrics.collector import persisted_registry
    from orchestrator.metrics.textfile import write_textfile_quietly

    write_textfile_quietly(persisted_registry(app.settings), app.settings.metrics.textfile_dir)


def _recover(app: App) -> RecoveryReport:
    """Recovery runs at every start of a command that may change a target (it holds the lock, so any
    transaction still in flight belongs to a process that died). Messages go to stderr: a command's
    own JSON stays the only thing on stdout."""
    report = recover_on_start(app)
    for item in report.recovered:
        info(f"recovered interrupted fix {item['txn']} on {item['target']}: {item['from']} -> "
             f"{item['to']} ({item['message']})")
    for problem in report.errors:
        warning(f"not recovered: {problem}")
    for closed in report.interrupted:
        warning(f"closed interrupted run {closed['session']} on {closed['target']} "
                f"(stage {closed['stage']}): the next run starts afresh; "
                f"`vmrepair report {closed['session']}` says what was left")
    return report


if __name__ == "__main__":
    sys.exit(main())
