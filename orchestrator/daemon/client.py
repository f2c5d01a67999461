"""Talks to the daemon's API over its unix socket (`vmrepair status`).

Not :mod:`http.client`: its timeout applies to each read, so a server sending one byte every few
seconds would keep `vmrepair status` waiting for ever, and it reads a body of any size. Here the
whole answer must arrive within one deadline and within :data:`MAX_RESPONSE_BYTES`. The daemon
closes every connection after one answer (see :mod:`orchestrator.daemon.http`), so the answer is
everything up to EOF.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.daemon.socketpath import SOCKET_ENV
from orchestrator.errors import DaemonError

#: An answer larger than this is refused (the largest real one, /issues, is a few hundred KB).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_START = ("start it with `systemctl start vmrepair` (or `vmrepair daemon --foreground`); if it "
          f"listens elsewhere, set {SOCKET_ENV} to its socket")
_CHECK = "check `systemctl status vmrepair` and its journal"
_FORBIDDEN = 403


class DaemonClient:
    def __init__(self, path: Path, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        #: Seconds for the whole exchange: connect, request, and the complete answer.
        self.timeout = timeout
        self._clock = clock

    def deadline(self) -> float:
        """A deadline ``timeout`` from now, for several :meth:`get` calls that must finish together."""
        return self._clock() + self.timeout

    def get(self, endpoint: str, *, deadline: float | None = None) -> tuple[int, Any]:
        """GET ``endpoint`` before ``deadline`` (default: ``timeout`` from now); returns (HTTP status,
        decoded JSON body).

        Raises:
            DaemonError: no daemon answers on the socket, access is denied, the answer does not
                arrive in time or is too large, or it is not JSON.
        """
        raw = self._exchange(endpoint, self.deadline() if deadline is None else deadline)
        status, body = self._parse(endpoint, raw)
        if status == _FORBIDDEN:
            raise DaemonError(f"the daemon on {self.path} refused this user",
                              remedy="run as root, or add your uid to daemon.allowed_uids in config.yaml")
        try:
            return status, json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise DaemonError(f"the daemon on {self.path} answered {endpoint} with something that is "
                              "not JSON", remedy=_CHECK) from exc

    def _exchange(self, endpoint: str, deadline: float) -> bytes:
        request = f"GET {endpoint} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        chunks: list[bytes] = []
        size = 0
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(self._remaining(deadline, endpoint))
                sock.connect(str(self.path))
                sock.settimeout(self._remaining(deadline, endpoint))
                sock.sendall(request)
                while True:
                    sock.settimeout(self._remaining(deadline, endpoint))
                    chunk = sock.recv(65536)
                    if not chunk:
                        return b"".join(chunks)
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise DaemonError(f"the daemon on {self.path} answered {endpoint} with more "
                                          f"than {MAX_RESPONSE_BYTES} bytes", remedy=_CHECK)
                    chunks.append(chunk)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonError(f"no vmrepair daemon is running (nothing answers on {self.path})",
                              remedy=_START) from exc
        except PermissionError as exc:
            raise DaemonError(f"permission denied on {self.path}",
                              remedy="run `vmrepair status` as root") from exc
        except TimeoutError as exc:
            raise self._too_slow(endpoint) from exc
        except OSError as exc:
            raise DaemonError(f"the daemon on {self.path} did not answer {endpoint}: "
                              f"{exc.strerror or exc}", remedy=_CHECK) from exc

    def _remaining(self, deadline: float, endpoint: str) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise self._too_slow(endpoint)
        return remaining

    def _too_slow(self, endpoint: str) -> DaemonError:
        return DaemonError(f"the daemon on {self.path} did not answer {endpoint} within {self.timeout:g} s",
                           remedy=_CHECK)

    def _parse(self, endpoint: str, raw: bytes) -> tuple[int, bytes]:
        """(status, body) of a complete ``Connection: close`` answer.

        Raises:
            DaemonError: empty, malformed, or shorter than its Content-Length.
        """
        if not raw:
            raise DaemonError(f"the daemon on {self.path} closed the connection without an answer to "
                              f"{endpoint}", remedy=_CHECK)
        head, sep, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in header_lines)}
        length = headers.get("content-length", str(len(body)))
        if (not sep or len(parts) < 2 or not parts[0].startswith("HTTP/1.")
                or not (parts[1].isascii() and parts[1].isdigit() and len(parts[1]) == 3)
                or not (length.isascii() and length.isdigit() and len(length) <= 12)):
            raise DaemonError(f"the daemon on {self.path} sent a malformed answer to {endpoint}",
                              remedy=_CHECK)
        if len(body) < int(length):
            raise DaemonError(f"the daemon on {self.path} sent an answer cut short to {endpoint} "
                              f"({len(body)} of {length} bytes)", remedy=_CHECK)
        return int(parts[1]), body[: int(length)]
