"""The API's accept loop: peer credentials, a bound on connections, one short-lived thread each.

Every connection is checked with ``SO_PEERCRED`` (the kernel's word on the client's uid, which the
client cannot fake); a uid the check refuses is answered 403 and audited. At most
``max_connections`` are served at once; one more is answered 503 by the accept loop itself, which
then drains what the client sends for at most :data:`LINGER_S`, so a flood of idle clients costs a
few file descriptors, never a thread each. Each connection gets the whole request within
``request_timeout_s`` (see :mod:`orchestrator.daemon.http`) and is then closed.

Closing a unix socket that still holds unread data makes the client's next read fail with
ECONNRESET, before it has seen the answer. So whenever the request was not read to its end (503,
408, 413, 400), the answer is followed by a half-close and the client's input is drained for at most
:data:`LINGER_S` before the close: the client reads the answer, then EOF.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from orchestrator.audit.sink import AuditSink
from orchestrator.daemon.http import (
    MAX_REQUEST_BYTES,
    HttpStatusError,
    Request,
    Response,
    read_request,
    write_response,
)
from orchestrator.errors import VmRepairError

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid, uid_t uid, gid_t gid
#: How long a connection answered before its request was read is drained before it is closed.
LINGER_S = 1.0
#: Connections answered 503 that the accept loop drains at once; more are closed at once.
_MAX_LINGERING = 64
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
         b"Retry-After: 1\r\n\r\n")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_credentials(conn: socket.socket) -> Peer:
    """The connecting process's pid/uid/gid as the kernel recorded them at connect().

    Raises:
        OSError: not a unix socket, or the kernel would not say.
    """
    pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid)


def uid_check(allowed: tuple[int, ...]) -> Callable[[Peer], bool]:
    """root, plus the uids in ``allowed``."""
    permitted = frozenset((0, *allowed))
    return lambda peer: peer.uid in permitted


def json_response(status: HTTPStatus, data: object) -> Response:
    body = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return Response(status, body.encode())


class ApiServer:
    """Serves ``handler`` on an already bound, listening unix socket until :meth:`close`."""

    def __init__(
        self,
        listener: socket.socket,
        handler: Callable[[Request], Response],
        audit: AuditSink,
        *,
        is_allowed: Callable[[Peer], bool],
        request_timeout_s: float,
        max_connections: int,
        credentials: Callable[[socket.socket], Peer] = peer_credentials,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listener = listener
        self._handler = handler
        self._audit = audit
        self._is_allowed = is_allowed
        self._timeout = request_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._credentials = credentials
        self._clock = clock
        # A socketpair wakes the select() on close: no polling, so an idle daemon uses no CPU here.
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: Connections answered 503, drained until they close or their deadline passes.
        self._lingering: dict[socket.socket, float] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="api-accept", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting; connections being served finish within their own deadline."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed.is_set():
                timeout = (min(self._lingering.values()) - self._clock()) if self._lingering else None
                for key, _ in sel.select(None if timeout is None else max(timeout, 0)):
                    if key.fileobj is self._listener and not self._closed.is_set():
                        busy = self._accept_one()
                        if busy is not None:
                            sel.register(busy, selectors.EVENT_READ)
                    elif key.fileobj in self._lingering:
                        self._drain(sel, key.fileobj)
                for conn, until in list(self._lingering.items()):
                    if until <= self._clock():
                        self._unlinger(sel, conn)
            for conn in list(self._lingering):
                self._unlinger(sel, conn)

    def _drain(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        try:
            if conn.recv(65536):
                return
        except OSError:
            pass
        self._unlinger(sel, conn)  # the client closed (or failed): done

    def _unlinger(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        sel.unregister(conn)
        del self._lingering[conn]
        conn.close()

    def _accept_one(self) -> socket.socket | None:
        """Accept one connection; returns it when it was answered 503 and must be drained."""
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:  # e.g. EMFILE: keep serving the connections we have
            log.warning("accept failed: %s", exc)
            time.sleep(0.1)
            return None
        if self._slots.acquire(blocking=False):
            threading.Thread(target=self._serve, args=(conn,), name="api-conn", daemon=True).start()
            return None
        try:
            conn.setblocking(False)
            conn.send(_BUSY)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return None
        if len(self._lingering) >= _MAX_LINGERING:
            conn.close()
            return None
        self._lingering[conn] = self._clock() + LINGER_S
        return conn

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                response, read_all = self._respond(conn)
                if response is not None:
                    with contextlib.suppress(OSError):
                        write_response(conn, response, deadline=self._clock() + self._timeout,
                                       clock=self._clock)
                        if not read_all:
                            self._drain_before_close(conn)
        finally:
            self._slots.release()

    def _drain_before_close(self, conn: socket.socket) -> None:
        """Half-close, then read and drop the client's input until EOF, LINGER_S or 1 MB.

        Raises:
            OSError: the client went away (the caller closes anyway).
        """
        conn.shutdown(socket.SHUT_WR)
        deadline, budget = self._clock() + LINGER_S, MAX_REQUEST_BYTES
        while budget > 0 and (remaining := deadline - self._clock()) > 0:
            conn.settimeout(remaining)
            chunk = conn.recv(65536)
            if not chunk:
                return
            budget -= len(chunk)

    def _respond(self, conn: socket.socket) -> tuple[Response | None, bool]:
        """The answer (None: nobody to answer) and whether the request was read to its end."""
        try:
            peer = self._credentials(conn)
            request = read_request(conn, deadline=self._clock() + self._timeout, clock=self._clock)
        except HttpStatusError as exc:
            return json_response(exc.status, {"error": exc.message}), False
        except OSError:  # client gone (ConnectionError) or credentials unreadable: nothing to answer
            return None, False
        if not self._is_allowed(peer):
            self._deny(peer, request)
            refused = {"error": f"uid {peer.uid} may not use this API"}
            return json_response(HTTPStatus.FORBIDDEN, refused), True
        try:
            return self._handler(request), True
        except Exception as exc:  # one bad request must not take the API down
            log.exception("API handler failed for %s", request.path)
            error = {"error": f"{type(exc).__name__}: {exc}"}
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, error), True

    def _deny(self, peer: Peer, request: Request) -> None:
        log.warning("API request %s %s from uid %d (pid %d) refused", request.method, request.path,
                    peer.uid, peer.pid)
        try:
            self._audit.record("api_denied", component="daemon", status="denied",
                               details={"uid": peer.uid, "pid": peer.pid, "gid": peer.gid,
                                        "method": request.method, "path": request.path})
        except VmRepairError as exc:
            log.exception("cannot audit a refused API request: %s", exc.message)
