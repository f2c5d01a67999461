"""`vmrepair daemon [--foreground]`: watch ``daemon.target`` and serve the local API until stopped.

The command re-executes the process (same pid, same environment) into ``python -P -m
orchestrator.daemon``: the console script has imported every subcommand's modules by now, about
16 MB of resident memory a process that stays up for months should not carry. The pid does not
change, so systemd (``Type=notify``) keeps tracking it. ``-P`` keeps the working directory off
``sys.path``, so a stray ``orchestrator/`` where the daemon is started cannot be imported as root.

Never forks: under systemd it reports READY/WATCHDOG/STOPPING itself; by hand it runs in the
foreground until SIGTERM or Ctrl-C. ``--foreground`` logs for a terminal (timestamps) even when
stderr goes to the journal (see :mod:`orchestrator.daemon.logsetup`).

Exit codes: 0 after a clean stop; 16 when it cannot start (socket path in the way, unsafe socket
directory, another daemon answering); 2 for an invalid config.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from orchestrator.app import App
from orchestrator.errors import DaemonError

#: Those the daemon takes with sigtimedwait() (see orchestrator.daemon.service); kept here so this
#: module does not import the daemon's.
HANDLED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("daemon", help="watch the configured target and serve the local API")
    parser.add_argument("--foreground", action="store_true",
                        help="log for a terminal (timestamps) even when stderr goes to the journal")
    parser.set_defaults(handler=cmd_daemon)


def daemon_argv(args: argparse.Namespace, python: str = sys.executable) -> list[str]:
    """The command line the daemon runs as after the re-exec."""
    flags = [flag for flag, wanted in (("--foreground", args.foreground), ("--debug", args.debug))
             if wanted]
    return [python, "-P", "-m", "orchestrator.daemon", *flags]


def cmd_daemon(app: App, args: argparse.Namespace) -> int:
    """Does not return: replaces this process with the daemon (which reports its own errors).

    Raises:
        DaemonError: the interpreter cannot be executed.
    """
    del app  # main() built it, so the config is valid; the daemon builds its own after the exec
    argv = daemon_argv(args)
    sys.stdout.flush()
    sys.stderr.flush()
    # The signal mask survives exec: a SIGHUP (`systemctl reload`) or SIGTERM arriving while the
    # daemon imports and builds itself waits for its sigtimedwait() instead of killing it.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        os.execv(argv[0], argv)  # noqa: S606 - fixed argv of our own interpreter, no shell
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise DaemonError(f"cannot start the daemon: {argv[0]}: {exc.strerror or exc}",
                          remedy="run `python3 -m orchestrator.daemon` with the interpreter "
                          "vmrepair is installed for") from exc
