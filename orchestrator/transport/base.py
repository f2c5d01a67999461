"""The transport seam: run an argv and move files on a host, locally or over SSH.

Modelled on testinfra's backends: one abstract base whose core is :meth:`Transport.run` returning
a small :class:`CommandResult` value. Commands are always an argv (never a shell string); remote
transports quote every argument with :func:`shlex.join`. :func:`validate_argv` and
:class:`OutputCapture` hold the argv checks and the output cap every implementation shares, so they
cannot drift apart; :func:`require_absolute` and :func:`copy_into` do the same for file transfers.
"""

from __future__ import annotations

import abc
import os
import posixpath
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, Self

from orchestrator.errors import CommandFailedError, FileTransferError, TransportError

if TYPE_CHECKING:  # stream.py builds on this module's errors; the type is only named here
    from orchestrator.transport.stream import CommandStream

#: Called with ("stdout" | "stderr", chunk) as output arrives, for streaming to a terminal.
OutputSink = Callable[[str, bytes], None]

#: Default cap on captured output per stream; anything past it is counted, not kept.
DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024

#: Wall-clock deadline of a command whose caller passes no ``timeout`` (seconds).
DEFAULT_COMMAND_TIMEOUT = 600.0

StreamName = Literal["stdout", "stderr"]

_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command. Output is untrusted bytes from the host; decode with care."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes
    duration_s: float = 0.0
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    @property
    def is_truncated(self) -> bool:
        return bool(self.stdout_dropped or self.stderr_dropped)


class Transport(abc.ABC):
    """Runs commands and moves files on one host.

    Implementations: :class:`~orchestrator.transport.local.LocalTransport`,
    :class:`~orchestrator.transport.ssh.ParamikoTransport`,
    :class:`~orchestrator.transport.fake.FakeTransport` (tests).
    """

    #: Human-readable host identifier used in messages (``local``, ``root@127.0.0.1:40022``).
    host: str = "?"

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        on_output: OutputSink | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        """Run ``argv`` and wait for it, at most ``timeout`` seconds of wall-clock time.

        Raises:
            CommandTimeoutError: the deadline passed; the command was abandoned (and killed if
                possible).
            ConnectError: the host cannot be reached.
            TransportError: any other failure to run the command (not a non-zero exit).
        """

    def check(self, argv: Sequence[str], **kwargs: object) -> CommandResult:
        """Like :meth:`run`, but a non-zero exit raises.

        Raises:
            CommandFailedError: the command exited non-zero.
        """
        result = self.run(argv, **kwargs)  # type: ignore[arg-type]
        if not result.succeeded:
            stderr = result.stderr_text.strip()[-2000:]
            raise CommandFailedError(
                f"{self.host}: command {list(argv)!r} exited {result.exit_status}: {stderr}",
                host=self.host,
                exit_status=result.exit_status,
                stderr=stderr,
            )
        return result

    @abc.abstractmethod
    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Copy a local file to ``remote`` (absolute path on the host).

        Raises:
            FileTransferError: the copy failed.
        """

    @abc.abstractmethod
    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        """Copy ``remote`` from the host to ``local``; refuse files larger than ``max_bytes``.

        Raises:
            FileTransferError: the copy failed or the file is too large.
        """

    def open_stream(self, argv: Sequence[str]) -> CommandStream | None:
        """Start ``argv`` with stdin and stdout kept open for a conversation; None when this transport
        cannot (callers then fall back to one :meth:`run` per request).

        Raises:
            ConnectError: the host cannot be reached.
            TransportError: the command cannot be started.
        """
        del argv
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release connections. Idempotent."""

    # Self (not Transport) so `with ParamikoTransport(...) as t:` keeps the concrete type.
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def validate_argv(argv: Sequence[str], *, host: str) -> tuple[str, ...]:
    """Return ``argv`` as a tuple after checking it is a non-empty sequence of NUL-free strings.

    Raises:
        TransportError: ``argv`` is malformed (a caller bug, never a host problem).
    """
    # A bare str is also a Sequence[str]; accepting it would run each character as an argument.
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise TransportError(f"{host}: argv must be a list of strings, got {argv!r}", host=host)
    args = tuple(argv)
    if not args:
        raise TransportError(f"{host}: argv is empty", host=host)
    for arg in args:
        # NUL cannot cross execve() or a shell command line; it would silently cut the argument.
        if not isinstance(arg, str) or "\0" in arg:
            raise TransportError(f"{host}: bad argument {arg!r} in argv {list(args)!r}", host=host)
    return args


class OutputCapture:
    """Keeps the first ``max_output`` bytes of each stream and counts the rest.

    Every chunk still goes to ``on_output``: streaming is not capped, only what is kept in memory.
    """

    def __init__(self, max_output: int, on_output: OutputSink | None = None) -> None:
        self._max = max(0, max_output)
        self._sink = on_output
        self._kept: dict[StreamName, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._dropped: dict[StreamName, int] = {"stdout": 0, "stderr": 0}

    def feed(self, stream: StreamName, chunk: bytes) -> None:
        if not chunk:
            return
        if self._sink is not None:
            self._sink(stream, chunk)
        kept = self._kept[stream]
        room = max(0, self._max - len(kept))
        kept += chunk[:room]
        self._dropped[stream] += max(0, len(chunk) - room)

    def result(self, argv: tuple[str, ...], exit_status: int, duration_s: float) -> CommandResult:
        return CommandResult(
            argv=argv,
            exit_status=exit_status,
            stdout=bytes(self._kept["stdout"]),
            stderr=bytes(self._kept["stderr"]),
            duration_s=duration_s,
            stdout_dropped=self._dropped["stdout"],
            stderr_dropped=self._dropped["stderr"],
        )


class Readable(Protocol):
    """A binary file opened for reading: a local file or an SFTP handle."""

    def read(self, size: int, /) -> bytes: ...


def require_absolute(remote: str, *, host: str) -> str:
    """Return ``remote`` if it is an absolute POSIX path.

    Raises:
        FileTransferError: it is relative (its meaning would depend on a working directory).
    """
    if not posixpath.isabs(remote):
        raise FileTransferError(f"{host}: remote path {remote!r} must be absolute", host=host)
    return remote


def copy_into(
    source: Readable,
    target: Path,
    *,
    host: str,
    mode: int | None = None,
    max_bytes: int | None = None,
) -> None:
    """Copy ``source`` to a temp file beside ``target``, then rename it into place.

    Readers of ``target`` see the old file or the new one, never half of one.

    Raises:
        FileTransferError: more than ``max_bytes`` arrived (the file grew after it was sized).
        OSError: writing ``target`` failed; callers translate it naming both ends.
    """
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            copied = 0
            while chunk := source.read(_COPY_CHUNK):
                copied += len(chunk)
                if max_bytes is not None and copied > max_bytes:
                    raise FileTransferError(  # noqa: TRY301 - must also remove the temp file
                        f"{host}: source of {target} grew past the {max_bytes} bytes allowed",
                        host=host,
                    )
                out.write(chunk)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
