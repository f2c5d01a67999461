"""Talks to the daemon's API over its unix socket (`vmrepair status`); stdlib http.client only."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from orchestrator.daemon.socketpath import SOCKET_ENV
from orchestrator.errors import DaemonError

_START = ("start it with `systemctl start vmrepair` (or `vmrepair daemon --foreground`); if it "
          f"listens elsewhere, set {SOCKET_ENV} to its socket")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DaemonClient:
    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def get(self, endpoint: str) -> tuple[int, Any]:
        """GET ``endpoint``; returns (HTTP status, decoded JSON body).

        Raises:
            DaemonError: no daemon answers on the socket, access is denied, or the answer is not JSON.
        """
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", endpoint)
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonError(f"no vmrepair daemon is running (nothing answers on {self.path})",
                              remedy=_START) from exc
        except PermissionError as exc:
            raise DaemonError(f"permission denied on {self.path}",
                              remedy="run `vmrepair status` as root") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonError(f"the daemon on {self.path} did not answer {endpoint}: {exc}",
                              remedy="check `systemctl status vmrepair` and its journal") from exc
        finally:
            conn.close()
        if status == http.client.FORBIDDEN:
            raise DaemonError(f"the daemon on {self.path} refused this user",
                              remedy="run as root, or add your uid to daemon.allowed_uids in config.yaml")
        try:
            return status, json.loads(body)
        except ValueError as exc:
            raise DaemonError(f"the daemon on {self.path} answered {endpoint} with something that is "
                              "not JSON") from exc
