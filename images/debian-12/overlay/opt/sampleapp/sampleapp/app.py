"""Command line and process lifecycle of sampleapp."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sampleapp import __version__
from sampleapp.config import ConfigError, from_env
from sampleapp.journal import CorruptLogError, Journal
from sampleapp.notify import notify
from sampleapp.server import SampleAppServer

EXIT_OK = 0
EXIT_RUNTIME = 1  # cannot read the log, cannot listen: may clear up, systemd retries
EXIT_CONFIG = 2  # bad setting in /etc/default/sampleapp: a retry cannot help
EXIT_CORRUPT_LOG = 3  # interaction log corrupt: a retry cannot help, a repair can


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sampleapp",
        description="sampleapp HTTP service (configured by SAMPLEAPP_PORT, SAMPLEAPP_BIND, SAMPLEAPP_LOG).",
    )
    parser.add_argument("--version", action="version", version=f"sampleapp {__version__}")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only verify the interaction log, then exit (0: sound, 3: corrupt)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    refusal = "sampleapp: check failed" if args.check else "sampleapp: refusing to start"
    try:
        config = from_env()
    except ConfigError as exc:
        _say(f"{refusal}: {exc}")
        return EXIT_CONFIG

    journal = Journal(config.log_path)
    try:
        entries = journal.verify()
    except CorruptLogError as exc:
        _say(f"{refusal}: {exc.path} line {exc.lineno} {exc.problem}; repair or quarantine it")
        return EXIT_CORRUPT_LOG
    except OSError as exc:
        _say(f"{refusal}: cannot read interaction log {config.log_path}: {exc.strerror or exc}")
        return EXIT_RUNTIME
    if args.check:
        _say(f"sampleapp: interaction log {config.log_path} is sound ({entries} entries)")
        return EXIT_OK

    try:
        server = SampleAppServer((config.bind, config.port), journal)
    except OSError as exc:
        _say(f"{refusal}: cannot listen on {config.bind}:{config.port}: {exc.strerror or exc}")
        return EXIT_RUNTIME
    return _serve(server, entries)


def _serve(server: SampleAppServer, entries: int) -> int:
    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the
        # thread that is serving (signal handlers run on the main thread).
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_name, server.server_port
    _say(
        f"sampleapp {__version__}: listening on {host}:{port}, "
        f"interaction log {server.journal.path} ({entries} entries)"
    )
    notify(f"READY=1\nSTATUS=listening on {host}:{port}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        notify("STOPPING=1")
        server.server_close()
    _say("sampleapp: stopped")
    return EXIT_OK
