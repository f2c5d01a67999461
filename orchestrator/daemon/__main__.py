"""``python -m orchestrator.daemon [--foreground] [--debug]``: the daemon's own, lean entry point.

`vmrepair daemon` re-executes itself into this (see :mod:`orchestrator.cli.daemon`): the console
script imports every subcommand's modules before it knows which one runs, which a process that stays
up for months should not carry. This entry point imports only what the daemon needs; it is, with
the CLI's ``main()``, the only place that turns errors into an exit code and a message.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from orchestrator.daemon.logsetup import configure_logging
from orchestrator.errors import VmRepairError

log = logging.getLogger("orchestrator.daemon")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vmrepair daemon")
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(foreground=args.foreground, debug=args.debug)
    from orchestrator.app import App
    from orchestrator.daemon.service import HANDLED_SIGNALS
    from orchestrator.daemon.wiring import build_daemon

    # Before the config is read: a SIGHUP or SIGTERM while the daemon builds itself must wait for
    # its sigtimedwait() (Daemon.run blocks them too; this closes the window before it).
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)

    app: App | None = None
    try:
        app = App.from_env()
        return build_daemon(app).run()
    except VmRepairError as exc:
        log.critical("cannot run the daemon: %s%s", exc.message,
                     f" (remedy: {exc.remedy})" if exc.remedy else "", exc_info=args.debug)
        return exc.exit_code
    finally:
        if app is not None:
            app.close()


if __name__ == "__main__":
    sys.exit(main())
