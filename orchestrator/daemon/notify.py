"""The sd_notify protocol, in-house: one datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``.

Written here rather than taken from a library because it is a few lines (sd_notify(3)) and the daemon
must run in the guest from a copied tarball without compiled extras. Without ``NOTIFY_SOCKET`` (the
daemon started by hand, or with ``Type=simple``) every call is a no-op, so the same code runs in the
foreground and under systemd. A notification that cannot be sent is logged and dropped, never raised:
systemd notices a missing ``READY=1`` or ``WATCHDOG=1`` on its own and acts on it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """The socket address in ``NOTIFY_SOCKET``: a path, or ``@name`` for the abstract namespace."""
    if value.startswith("@"):
        # Linux abstract socket names start with a NUL byte; systemd writes it as "@".
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET=%r is not a unix socket address; notifications are off", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC (systemd's advice), when it is ours."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the
    # environment must not ping on its parent's behalf.
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to the service manager, when there is one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        #: None when systemd expects no watchdog pings from this process.
        self.watchdog_interval_s = _watchdog_interval(env)

    @property
    def is_enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ...) as one datagram; False when off or not delivered."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode("utf-8", errors="replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", fields[0] if fields else "", exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", _status(status))

    def status(self, text: str) -> bool:
        return self.notify(_status(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", _status(status))


def _status(text: str) -> str:
    # One line: a newline would start a new KEY=value field that we did not mean to send.
    return "STATUS=" + " ".join(text.split())[:200]
