"""``metrics.listen``: /metrics over TCP for a Prometheus that cannot reach the root-only unix socket.

Only ``GET /metrics`` is served; the rest of the API (sessions, issues) stays on the socket, whose
peers are checked by uid, which TCP cannot do. The address is loopback unless the config says
``allow_remote`` (checked when the config loads, :mod:`orchestrator.config.metrics`).

The same bounded HTTP as the socket (:mod:`orchestrator.daemon.http`): the whole request within
``request_timeout_s``, at most :data:`MAX_CONNECTIONS` served at once (one more is closed at once),
so a slow or flooding client costs a few threads at most, never the daemon. A scrape is a handful
of file reads; Prometheus sends one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import CollectorRegistry

from orchestrator.daemon.api import metrics_response
from orchestrator.daemon.http import HttpStatusError, Request, Response, read_request, write_response
from orchestrator.daemon.server import json_response
from orchestrator.errors import DaemonError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 4
PATH = "/metrics"


def bind_metrics_port(address: str, port: int) -> socket.socket:
    """A listening TCP socket on ``address:port`` (port 0: any free one, for tests).

    Raises:
        DaemonError: the port is taken or the address is not this host's.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(MAX_CONNECTIONS)
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}",
                          remedy="choose another metrics.listen port, or stop what holds this one") from exc
    return sock


class MetricsPortServer:
    """Serves ``registry`` as /metrics on ``listener`` until :meth:`close`."""

    def __init__(self, listener: socket.socket, registry: CollectorRegistry, *, request_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._listener = listener
        self._registry = registry
        self._timeout = request_timeout_s
        self._clock = clock
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="metrics-accept", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        # shutdown() wakes the accept() blocked in the other thread; close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.1)  # EMFILE and the like: keep serving once it passes
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()  # busy: Prometheus retries at the next scrape
                continue
            threading.Thread(target=self._serve, args=(conn,), name="metrics-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                response = self._respond(conn)
                if response is not None:
                    with contextlib.suppress(OSError):
                        write_response(conn, response, deadline=self._clock() + self._timeout,
                                       clock=self._clock)
        finally:
            self._slots.release()

    def _respond(self, conn: socket.socket) -> Response | None:
        try:
            request = read_request(conn, deadline=self._clock() + self._timeout, clock=self._clock)
        except HttpStatusError as exc:
            return json_response(exc.status, {"error": exc.message})
        except OSError:
            return None
        return self._route(request)

    def _route(self, request: Request) -> Response:
        if request.path.rstrip("/") != PATH:
            return json_response(HTTPStatus.NOT_FOUND, {"error": "only /metrics is served on this port"})
        if request.method != "GET":
            return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{request.method} is not allowed"})
        try:
            return metrics_response(self._registry)
        except Exception as exc:  # a bug in a collector must not take the port down
            log.exception("metrics collection failed")
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(exc).__name__})
