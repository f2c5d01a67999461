"""The agent's server mode from the orchestrator's side: one ``python3 <script> --serve`` per host and
client, answering every request of a run over one open channel.

A request is one line of ASCII JSON; an answer is its length in ASCII digits, a newline, then that many
bytes of JSON (``serve()`` in the agent script). Requests are serialised: the server answers one at a
time, and the probes that run concurrently mostly run other commands.

Anything unexpected — a deadline passed, a header that is not a length, an answer over its cap, the
process gone — kills the server; the next request starts a new one. A request is never sent twice: if
the server died after reading it, nobody knows whether it ran, so the caller gets the error.
"""

from __future__ import annotations

import logging
import threading
import time

from orchestrator.errors import AgentError
from orchestrator.transport.base import Transport
from orchestrator.transport.stream import CommandStream, StreamClosedError

log = logging.getLogger(__name__)

#: The longest answer header: up to 12 digits and the newline.
_HEADER_LIMIT = 13


class ServerGone(Exception):
    """Internal: the server could not be started or died before it read the request (safe to retry
    once, or to fall back to one process per request)."""

    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


class AgentServer:
    """Talks to one agent server process; restarts it when it is gone."""

    def __init__(self, transport: Transport, argv: list[str]) -> None:
        self.transport = transport
        self.argv = [*argv, "--serve"]
        self._stream: CommandStream | None = None
        self._lock = threading.Lock()
        #: False once the transport said it cannot hold a stream open.
        self.is_supported = True
        self.started = 0

    @property
    def host(self) -> str:
        return self.transport.host

    def exchange(self, op: str, request: bytes, *, cap: int, timeout: float) -> bytes:
        """Send one request line, return the answer's JSON bytes.

        Raises:
            ServerGone: no server could be started, or it exited before reading ``request``.
            CommandTimeoutError: no complete answer before ``timeout`` (the server was killed).
            AgentError: a malformed header or an answer larger than ``cap`` (the server was killed).
            TransportError: the connection broke after the request was sent.
        """
        with self._lock:
            stream = self._live_stream()
            deadline = time.monotonic() + timeout
            try:
                stream.send(request + b"\n", deadline)
            except StreamClosedError:
                # Nothing of the request was read (a dead server cannot have acted on it).
                self._drop()
                raise ServerGone(stream.stderr_tail) from None
            try:
                header = stream.recv_line(_HEADER_LIMIT, deadline)
            except StreamClosedError as exc:
                self._drop()
                tail = stream.stderr_tail
                if "can't open file" in tail and self.argv[-2] in tail:
                    raise ServerGone(tail) from None  # the script never started: nothing ran
                raise AgentError(f"{self.host}: agent {op}: {exc.message}", host=self.host) from exc
            except BaseException:
                self._drop()
                raise
            digits = header[:-1]
            if not (digits.isascii() and digits.isdigit()):
                self._drop()
                raise AgentError(f"{self.host}: agent {op}: answer header {header[:20]!r} is not a length",
                                 host=self.host)
            size = int(digits)
            if size > cap:
                self._drop()
                raise AgentError(f"{self.host}: agent {op}: answer larger than the {cap} bytes allowed",
                                 host=self.host)
            try:
                return stream.recv_exact(size, deadline)
            except BaseException:
                self._drop()
                raise

    def _live_stream(self) -> CommandStream:
        stream = self._stream
        if stream is not None and stream.is_alive:
            return stream
        self._drop()
        opened = self.transport.open_stream(self.argv)
        if opened is None:
            self.is_supported = False
            raise ServerGone("")
        self.started += 1
        log.debug("agent server started on %s (%d so far)", self.host, self.started)
        self._stream = opened
        return opened

    def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
