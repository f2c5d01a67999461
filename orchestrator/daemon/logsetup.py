"""Logging of the daemon: for a terminal (timestamps), or for the journal (syslog priority prefixes).

Under systemd, stderr goes to the journal (``$JOURNAL_STREAM`` is set), which stamps every line
itself and reads a ``<N>`` prefix as the line's priority (sd-daemon(3)), so `journalctl -p warning`
shows the daemon's warnings. ``foreground=True`` forces the terminal format.
"""

from __future__ import annotations

import logging
import os

#: logging level → syslog priority.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        # Continuation lines (tracebacks) become journal entries too: give them the priority as well.
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def configure_logging(*, foreground: bool, debug: bool) -> None:
    handler = logging.StreamHandler()
    if foreground or not os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        # paramiko logs every refused banner as an ERROR with a traceback; the transport maps
        # those failures into our errors, so its own logging is noise unless debugging.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
