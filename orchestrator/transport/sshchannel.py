"""Commands on one paramiko channel: start one under a deadline, feed its stdin and drain its output,
or keep it open as a :class:`~orchestrator.transport.stream.CommandStream`.

Separate from :mod:`~orchestrator.transport.ssh` (which owns the connection, its session slots and
its errors) because this is the byte-level loop over a channel, the same whoever opened it. Every
command gets a wall-clock deadline enforced here, because paramiko's ``recv_exit_status()`` ignores
channel timeouts (https://github.com/paramiko/paramiko/issues/1815). A passed deadline is raised as
:class:`DeadlineError`, which the transport turns into CommandTimeoutError; the wire errors
(:data:`WIRE_ERRORS`) are left to it too, except in a stream, which maps them to StreamClosedError.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
import weakref
from collections.abc import Callable

import paramiko

from orchestrator.transport.base import OutputCapture
from orchestrator.transport.stream import CommandStream, StreamClosedError

_CHUNK = 32 * 1024
_STDIN_POLL_S = 0.02  # how soon we retry stdin when the peer's receive window is full
_IDLE_POLL_S = 0.5  # longest wait between deadline checks while the command is silent
#: What paramiko and the socket layer raise once a connection is broken or misbehaves.
WIRE_ERRORS = (paramiko.SSHException, EOFError, OSError)


class DeadlineError(Exception):
    """Internal: the command's deadline passed (never leaves the SSH transport)."""


def exec_command(channel: paramiko.Channel, command: str, deadline: float) -> None:
    """Start ``command``; paramiko waits for the server's reply without a timeout of its own."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        channel.close()  # wakes exec_command() up with "Channel closed"

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.start()
    try:
        channel.exec_command(command)
    except paramiko.SSHException:
        if not fired.is_set():
            raise
    finally:
        timer.cancel()
        timer.join()
    if fired.is_set():
        raise DeadlineError


def pump(channel: paramiko.Channel, stdin: bytes, capture: OutputCapture, deadline: float) -> int:
    """Feed stdin and drain output until exit status and EOF both arrived; return the status."""
    pending = memoryview(stdin)
    if not pending:
        channel.shutdown_write()
    while True:
        is_busy = False
        if pending and channel.send_ready():
            is_busy = True
            try:
                pending = pending[channel.send(bytes(pending[:_CHUNK])) :]
            except OSError:
                pending = pending[:0]  # the command exited or closed stdin: it chose not to read
            if not pending:
                channel.shutdown_write()
        # One chunk per stream per turn, so endless output cannot starve the deadline check.
        if channel.recv_ready():
            is_busy = True
            capture.feed("stdout", channel.recv(_CHUNK))
        if channel.recv_stderr_ready():
            is_busy = True
            capture.feed("stderr", channel.recv_stderr(_CHUNK))
        # OpenSSH may send exit-status before the last output, so wait for EOF as well. A channel
        # closed without any status (e.g. the command was killed by a signal) reports -1.
        is_done = channel.exit_status_ready() and (channel.eof_received or channel.closed)
        if is_done and not channel.recv_ready() and not channel.recv_stderr_ready():
            return channel.recv_exit_status()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineError
        if not is_busy:
            wait = min(remaining, _STDIN_POLL_S if pending else _IDLE_POLL_S)
            if channel.eof_received or channel.closed:
                # After EOF the channel's fileno stays readable forever; wait on the status instead.
                channel.status_event.wait(wait)
            else:
                select.select([channel], [], [], wait)


class ChannelStream(CommandStream):
    """A command on its own SSH channel; closing the channel ends the command's stdin (and, for the
    agent's server, the command)."""

    def __init__(self, host: str, argv: tuple[str, ...], channel: paramiko.Channel, *,
                 release: Callable[[], None]) -> None:
        super().__init__(host, argv)
        self._channel = channel
        # A client dropped without close() (an agent nobody closed) must not keep its session slot:
        # after ssh.MAX_SESSIONS such leaks every command would wait out its deadline.
        self._finalizer = weakref.finalize(self, _end_channel, channel, release)

    @property
    def is_alive(self) -> bool:
        ch = self._channel
        return not (ch.closed or ch.eof_received or ch.exit_status_ready())

    def _write(self, data: bytes, deadline: float) -> None:
        pending = memoryview(data)
        try:
            while pending:
                if time.monotonic() >= deadline:
                    raise self._expired("read its request")
                if self._channel.send_ready():
                    pending = pending[self._channel.send(bytes(pending[:_CHUNK])):]
                else:
                    self._drain_stderr()
                    time.sleep(_STDIN_POLL_S)
        except WIRE_ERRORS as exc:
            raise self._broken(exc) from exc

    def _read_some(self, deadline: float) -> bytes:
        ch = self._channel
        try:
            while True:
                self._drain_stderr()
                if ch.recv_ready():
                    return bytes(ch.recv(_CHUNK))
                if ch.eof_received or ch.closed:
                    self._drain_stderr()  # its last words may have come with the EOF
                    return b""
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                select.select([ch], [], [], min(remaining, _IDLE_POLL_S))
        except WIRE_ERRORS as exc:
            raise self._broken(exc) from exc

    def _drain_stderr(self) -> None:
        while self._channel.recv_stderr_ready():
            self._keep_stderr(self._channel.recv_stderr(_CHUNK))

    def _broken(self, exc: BaseException) -> StreamClosedError:
        self.close()
        return StreamClosedError(f"{self.host}: session broke while talking to {list(self.argv)!r}: {exc}",
                                 host=self.host)

    def _kill(self) -> None:
        self._finalizer()


def _end_channel(channel: paramiko.Channel, release: Callable[[], None]) -> None:
    with contextlib.suppress(*WIRE_ERRORS):
        channel.close()
    release()
