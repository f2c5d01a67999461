"""Run commands and copy files on this machine.

The only module of vmrepair that uses :mod:`subprocess`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from orchestrator.errors import CommandTimeoutError, FileTransferError, TransportError
from orchestrator.transport.base import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    OutputCapture,
    OutputSink,
    StreamName,
    Transport,
    copy_into,
    require_absolute,
    validate_argv,
)
from orchestrator.transport.stream import CommandStream

_CHUNK = 64 * 1024
#: How long a stream's command gets to exit after its stdin closed before its group is killed.
_STREAM_EXIT_S = 1.0


class _DeadlineError(Exception):
    """Internal: the command's deadline passed while we were still waiting for it."""


class LocalTransport(Transport):
    """Runs an argv on this host (never through a shell) under a real wall-clock deadline.

    Each command runs in its own session, so on timeout the whole process group, grandchildren
    included, is killed with SIGKILL. Output is streamed to ``on_output`` as it arrives.

    Raises (from :meth:`run`, :meth:`put_file`, :meth:`get_file`):
        CommandTimeoutError: the command outlived its deadline; its process group was killed.
        TransportError: the program does not exist or cannot be executed, or argv is malformed.
        FileTransferError: a copy failed, or the source is larger than ``max_bytes``.
    """

    host = "local"

    def __init__(
        self,
        *,
        env_overrides: Mapping[str, str] | None = None,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self._env_overrides = dict(env_overrides or {})
        self._command_timeout = command_timeout

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        on_output: OutputSink | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        args = validate_argv(argv, host=self.host)
        limit = self._command_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + limit
        env = {**os.environ, **self._env_overrides} if self._env_overrides else None
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                # Own session = own process group, so a timeout can kill everything it spawned.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise TransportError(
                f"local: program {args[0]!r} not found (is it installed and on PATH?)",
                host=self.host,
            ) from exc
        except OSError as exc:
            raise TransportError(
                f"local: cannot execute {list(args)!r}: {exc}", host=self.host
            ) from exc

        capture = OutputCapture(max_output, on_output)
        try:
            _pump(proc, stdin or b"", capture, deadline)
            exit_status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (_DeadlineError, subprocess.TimeoutExpired) as exc:
            raise CommandTimeoutError(
                f"local: command {list(args)!r} exceeded its {limit:g} s deadline;"
                " its process group was killed",
                host=self.host,
                argv=list(args),
            ) from exc
        finally:
            # Also reached when on_output raises: never leave a child running behind our back.
            if proc.returncode is None:
                _kill_group(proc)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        return capture.result(args, exit_status, time.monotonic() - started)

    def open_stream(self, argv: Sequence[str]) -> CommandStream:
        args = validate_argv(argv, host=self.host)
        env = {**os.environ, **self._env_overrides} if self._env_overrides else None
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise TransportError(f"local: cannot execute {list(args)!r}: {exc}", host=self.host) from exc
        return _PipeStream(self.host, args, proc)

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        target = Path(require_absolute(remote, host=self.host))
        try:
            with local.open("rb") as source:
                copy_into(source, target, host=self.host, mode=mode)
        except OSError as exc:
            raise FileTransferError(
                f"local: cannot copy {local} to {remote}: {exc}", host=self.host
            ) from exc

    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        source_path = Path(require_absolute(remote, host=self.host))
        try:
            with source_path.open("rb") as source:
                size = os.fstat(source.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise FileTransferError(
                        f"local: {remote} is {size} bytes, larger than the {max_bytes} allowed",
                        host=self.host,
                    )
                copy_into(source, local, host=self.host, max_bytes=max_bytes)
        except OSError as exc:
            raise FileTransferError(
                f"local: cannot copy {remote} to {local}: {exc}", host=self.host
            ) from exc


def _pump(
    proc: subprocess.Popen[bytes], stdin: bytes, capture: OutputCapture, deadline: float
) -> None:
    """Feed stdin and drain stdout/stderr together until both reach EOF or the deadline passes.

    Interleaving matters: a child that fills one pipe while we block on another would deadlock.
    """
    streams: dict[int, StreamName] = {}
    with selectors.DefaultSelector() as selector:
        outputs: tuple[tuple[IO[bytes] | None, StreamName], ...] = (
            (proc.stdout, "stdout"),
            (proc.stderr, "stderr"),
        )
        for pipe, name in outputs:
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ)
                streams[pipe.fileno()] = name
        pending = memoryview(stdin)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin, selectors.EVENT_WRITE)
        while streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _DeadlineError
            for key, _ in selector.select(remaining):
                fd = key.fd
                if fd in streams:
                    chunk = os.read(fd, _CHUNK)
                    if chunk:
                        capture.feed(streams[fd], chunk)
                    else:
                        selector.unregister(key.fileobj)
                        del streams[fd]
                elif proc.stdin is not None:
                    pending = _write_some(fd, pending)
                    if not pending:
                        selector.unregister(proc.stdin)
                        # Closing sends EOF; a child reading stdin to the end would hang without.
                        _close_quietly(proc.stdin)


def _write_some(fd: int, pending: memoryview) -> memoryview:
    try:
        written = os.write(fd, pending[:_CHUNK])
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        # The child exited or closed stdin without reading it all; that is its business.
        return pending[:0]
    return pending[written:]


def _close_quietly(pipe: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child is not reaped yet, so its pid is still the (reserved) process-group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _PipeStream(CommandStream):
    """A child process in its own session; closing kills its process group."""

    def __init__(self, host: str, argv: tuple[str, ...], proc: subprocess.Popen[bytes]) -> None:
        super().__init__(host, argv)
        self._proc = proc
        if proc.stdin is None or proc.stdout is None or proc.stderr is None:  # PIPE was asked for all three
            raise TransportError(f"local: {list(argv)!r} started without pipes", host=host)
        self._stdin, self._stdout, self._stderr_pipe = proc.stdin, proc.stdout, proc.stderr
        os.set_blocking(self._stdin.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ, "stdout")
        self._selector.register(self._stderr_pipe, selectors.EVENT_READ, "stderr")
        # A client dropped without close() (a test, an exception path) must not leak the child.
        self._finalizer = weakref.finalize(self, _end_stream, proc, self._selector)

    @property
    def is_alive(self) -> bool:
        return self._proc.poll() is None

    def _write(self, data: bytes, deadline: float) -> None:
        pending = memoryview(data)
        fd = self._stdin.fileno()
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._expired("read its request")
            try:
                pending = pending[os.write(fd, pending[:_CHUNK]):]
            except BlockingIOError:
                self._read_ready(min(remaining, 0.05), want_stdout=False)
            except BrokenPipeError:
                raise self._closed_error() from None

    def _read_some(self, deadline: float) -> bytes:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            chunk = self._read_ready(remaining, want_stdout=True)
            if chunk is not None:
                return chunk

    def _read_ready(self, timeout: float, *, want_stdout: bool) -> bytes | None:
        """Wait up to ``timeout`` for output; stderr is kept aside, stdout returned (b"" at EOF)."""
        for key, _ in self._selector.select(timeout):
            chunk = os.read(key.fd, _CHUNK)
            if key.data == "stderr":
                if chunk:
                    self._keep_stderr(chunk)
                else:
                    self._selector.unregister(key.fileobj)
            elif want_stdout:
                if not chunk:
                    self._drain_stderr_at_exit()
                return chunk
        return None

    def _drain_stderr_at_exit(self) -> None:
        """stdout hit EOF: keep what the command still said on stderr (its error message)."""
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            events = [k for k, _ in self._selector.select(deadline - time.monotonic()) if k.data == "stderr"]
            if not events:
                return
            chunk = os.read(events[0].fd, _CHUNK)
            if not chunk:
                self._selector.unregister(events[0].fileobj)
                return
            self._keep_stderr(chunk)

    def _kill(self) -> None:
        self._finalizer()


def _end_stream(proc: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> None:
    selector.close()
    # EOF first: an idle server exits by itself; one still busy (a timeout) is killed.
    if proc.stdin is not None:
        _close_quietly(proc.stdin)
    try:
        proc.wait(timeout=_STREAM_EXIT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            _close_quietly(pipe)
