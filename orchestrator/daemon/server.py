"""The API's accept loop: peer credentials, a bound on connections, one short-lived thread each.

Every connection is checked with ``SO_PEERCRED`` (the kernel's word on the client's uid, which the
client cannot fake) as soon as it is accepted, before a byte of its request is read: a uid the check
refuses is answered 403 by the accept loop itself and never takes a slot, so refused peers cannot
starve the API however slowly they send. Refusals are logged and audited at a bounded rate
(:class:`~orchestrator.daemon.ratelimit.LogBudget`), the rest counted. At most ``max_connections``
are served at once, and the last of those slots is kept for root, so an allowed non-root user cannot
lock root out either; one more is answered 503 by the accept loop, which then drains what the client
sends for at most :data:`LINGER_S`, so a flood of idle clients costs a few file descriptors, never a
thread each. Each connection gets the whole request within ``request_timeout_s`` (see
:mod:`orchestrator.daemon.http`) and is then closed. What a client sent is logged only capped and
escaped (:func:`~orchestrator.daemon.http.loggable`).

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
    loggable,
    read_request,
    render_response,
    write_response,
)
from orchestrator.daemon.ratelimit import LogBudget
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
        refusals: LogBudget | None = None,
    ) -> None:
        self._listener = listener
        self._handler = handler
        self._audit = audit
        self._is_allowed = is_allowed
        self._timeout = request_timeout_s
        self._max_connections = max_connections
        #: Slots a non-root peer may take: all but one kept for root (none kept with a single slot).
        self._others_max = max_connections - 1 if max_connections > 1 else max_connections
        self._active = 0
        self._slot_lock = threading.Lock()
        self._refusals = refusals or LogBudget()
        self._credentials = credentials
        self._clock = clock
        # A socketpair wakes the select() on close: no polling, so an idle daemon uses no CPU here.
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: Connections answered 503, drained until they close or their deadline passes.
        self._lingering: dict[socket.socket, float] = {}

    def reconfigure(self, *, is_allowed: Callable[[Peer], bool], request_timeout_s: float) -> None:
        """Apply a reloaded config: new connections see the new uid check and timeout."""
        self._is_allowed, self._timeout = is_allowed, request_timeout_s

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
        """Accept one connection; returns it when it was answered (403, 503) and must be drained."""
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:  # e.g. EMFILE: keep serving the connections we have
            log.warning("accept failed: %s", exc)
            time.sleep(0.1)
            return None
        try:
            peer = self._credentials(conn)
        except OSError as exc:
            log.warning("cannot read the credentials of an API client: %s", exc)
            conn.close()
            return None
        if not self._is_allowed(peer):
            self._deny(peer)
            refused = json_response(HTTPStatus.FORBIDDEN, {"error": f"uid {peer.uid} may not use this API"})
            return self._answer_early(conn, render_response(refused))
        if self._take_slot(peer):
            threading.Thread(target=self._serve, args=(conn,), name="api-conn", daemon=True).start()
            return None
        return self._answer_early(conn, _BUSY)

    def _take_slot(self, peer: Peer) -> bool:
        with self._slot_lock:
            if self._active >= (self._max_connections if peer.uid == 0 else self._others_max):
                return False
            self._active += 1
            return True

    def _release_slot(self) -> None:
        with self._slot_lock:
            self._active -= 1

    def _answer_early(self, conn: socket.socket, answer: bytes) -> socket.socket | None:
        """Send a small answer without reading the request, half-close, and hand the connection to
        the accept loop to drain (or close it at once when too many are lingering)."""
        try:
            conn.setblocking(False)
            conn.send(answer)  # a few hundred bytes: fits in an empty socket buffer
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
            self._release_slot()

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
            request = read_request(conn, deadline=self._clock() + self._timeout, clock=self._clock)
        except HttpStatusError as exc:
            return json_response(exc.status, {"error": exc.message}), False
        except OSError:  # client gone (ConnectionError): nothing to answer
            return None, False
        try:
            return self._handler(request), True
        except Exception as exc:  # one bad request must not take the API down
            log.exception("API handler failed for %s %s", loggable(request.method, 20),
                          loggable(request.path))
            error = {"error": f"{type(exc).__name__}: {exc}"}
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, error), True

    def _deny(self, peer: Peer) -> None:
        suppressed = self._refusals.admit()
        if suppressed is None:
            return
        more = f" ({suppressed} more refused connections were not logged)" if suppressed else ""
        log.warning("API connection from uid %d (pid %d) refused%s", peer.uid, peer.pid, more)
        details = {"uid": peer.uid, "pid": peer.pid, "gid": peer.gid}
        if suppressed:
            details["suppressed"] = suppressed
        try:
            self._audit.record("api_denied", component="daemon", status="denied", details=details)
        except VmRepairError as exc:
            log.exception("cannot audit a refused API connection: %s", exc.message)
