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
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator import __version__
from orchestrator.cli.helptext import apply_help
from orchestrator.cli.output import emit_json, err_console, error, info, warning
from orchestrator.errors import BootError, ImageBuildError, LockHeldError, VmRepairError
from orchestrator.state.lock import StateLock

if TYPE_CHECKING:
    # Imported when a command runs, not to build its parser (see COMMAND_MODULES).
    from orchestrator.app import App
    from orchestrator.apply.recovery import RecoveryReport

EXIT_INTERRUPTED = 130
#: The modules of orchestrator.cli that register commands, in the order `vmrepair --help` lists them.
MODULES = ("doctor", "image", "vm", "detect", "facts", "baseline", "run", "demo", "sessions", "fixes",
           "reboot", "daemon", "status", "log", "quarantine", "playbook", "watch", "gate", "completion",
           "config", "prune", "fleet")
#: The module that registers each command. `vmrepair COMMAND ...` imports that module alone: every
#: module imports what its commands run (the pipeline, the crypto of fleet bundles, boot
#: diagnostics), and a unit's `ExecStartPre=vmrepair gate` or `vmrepair status` should not pay for all
#: of it (bench/cli_start.py). tests/unit/cli/test_main.py checks the table against the modules.
COMMAND_MODULES = {
    "doctor": "doctor", "image": "image", "vm": "vm", "detect": "detect", "facts": "facts",
    "baseline": "baseline", "run": "run", "demo": "demo", "sessions": "sessions", "report": "sessions",
    "fixes": "fixes", "reboot": "reboot", "daemon": "daemon", "status": "status", "log": "log",
    "quarantine": "quarantine", "playbook": "playbook", "watch": "watch", "gate": "gate",
    "config": "config", "prune": "prune", "fleet": "fleet",
    # completion and manpage describe every command: they get the whole parser (command_of).
}
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


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names when only its module is needed to parse it, else None (no command,
    an unknown one, a help or version request before it, completion/manpage)."""
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return None
        if not arg.startswith("-"):   # the top level's other options (--json, --debug) take no value
            return arg if arg in COMMAND_MODULES else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``command`` only that command's (the same parser for its argv)."""
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
    for name in MODULES if command is None else (COMMAND_MODULES[command],):
        importlib.import_module(f"orchestrator.cli.{name}").register(sub)
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
    given = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_of(given))
    args = parser.parse_args(given)
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
        from orchestrator.app import App

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
    from orchestrator.apply.recovery import recover_on_start

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
