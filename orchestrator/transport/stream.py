"""A long-lived command with a byte pipe each way: what the agent's server mode runs over.

Starting an interpreter in a TCG guest costs about 0.2 s before the agent's code is even compiled (0.5 s
per agent call, measured); one process answering every request of a run turns that into a write and a
read on an open channel. :class:`CommandStream` holds the buffering and deadline logic; each transport
supplies the raw reads and writes (:meth:`Transport.open_stream`).
"""

from __future__ import annotations

import abc
import time

from orchestrator.errors import CommandTimeoutError, TransportError

#: Kept of the command's stderr, for the message when it dies (its last words).
STDERR_TAIL = 4096


class StreamClosedError(TransportError):
    """The command exited or the connection dropped while a stream was in use."""


class CommandStream(abc.ABC):
    """One running command: :meth:`send` to its stdin, read its stdout by line or by length.

    Every read and write takes an absolute ``time.monotonic()`` deadline: a command that stops
    answering raises CommandTimeoutError and is killed (the stream is unusable afterwards).

    Raises (from every method but :meth:`close`):
        CommandTimeoutError: the deadline passed; the command was killed.
        StreamClosedError: the command exited (stdout at EOF) or the connection broke.
    """

    def __init__(self, host: str, argv: tuple[str, ...]) -> None:
        self.host = host
        self.argv = argv
        self._buffer = bytearray()
        self._stderr = bytearray()
        self._closed = False

    # -- what a transport implements ------------------------------------------------------------

    @abc.abstractmethod
    def _write(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` or raise (_Deadline via :meth:`_expired`, or StreamClosedError)."""

    @abc.abstractmethod
    def _read_some(self, deadline: float) -> bytes:
        """Up to one chunk of stdout, b"" at EOF; stderr read meanwhile goes to :meth:`_keep_stderr`."""

    @abc.abstractmethod
    def _kill(self) -> None:
        """Stop the command and release the channel or pipes. Idempotent."""

    @property
    @abc.abstractmethod
    def is_alive(self) -> bool:
        """False once the command exited or the connection dropped (best effort: checked before use)."""

    # -- shared ---------------------------------------------------------------------------------

    def _keep_stderr(self, chunk: bytes) -> None:
        self._stderr += chunk
        del self._stderr[:-STDERR_TAIL]

    @property
    def stderr_tail(self) -> str:
        return self._stderr.decode("utf-8", errors="replace")

    def _expired(self, what: str) -> CommandTimeoutError:
        self.close()
        return CommandTimeoutError(
            f"{self.host}: {list(self.argv)!r} did not {what} in time and was abandoned",
            host=self.host, argv=list(self.argv),
        )

    def _closed_error(self) -> StreamClosedError:
        self.close()
        tail = " | ".join(self.stderr_tail.strip().splitlines()[-3:])
        return StreamClosedError(
            f"{self.host}: {list(self.argv)!r} exited{': ' + tail if tail else ''}", host=self.host
        )

    def send(self, data: bytes, deadline: float) -> None:
        if self._closed:
            raise self._closed_error()
        self._write(data, deadline)

    def recv_line(self, limit: int, deadline: float) -> bytes:
        """The next line, newline included; a line longer than ``limit`` kills the command."""
        while True:
            end = self._buffer.find(b"\n", 0, limit + 1)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > limit:
                self.close()
                raise StreamClosedError(
                    f"{self.host}: {list(self.argv)!r} wrote a line longer than {limit} bytes",
                    host=self.host,
                )
            self._fill(deadline, "answer")

    def recv_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline, "answer")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self, deadline: float, what: str) -> None:
        if self._closed:
            raise self._closed_error()
        if time.monotonic() >= deadline:
            raise self._expired(what)
        chunk = self._read_some(deadline)
        if not chunk:
            if time.monotonic() >= deadline:
                raise self._expired(what)
            raise self._closed_error()
        self._buffer += chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._kill()
