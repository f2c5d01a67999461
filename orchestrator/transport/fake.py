"""An in-memory transport for tests, in the spirit of httpx's ``MockTransport(handler)``.

Code under test talks to a real :class:`~orchestrator.transport.base.Transport`; the test decides
what each command returns (or raises) in a plain function, and inspects :attr:`FakeTransport.calls`
afterwards, instead of patching dotted paths::

    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if list(argv) == systemd.is_active_argv("nginx.service"):
            return 3, b"inactive\\n", b""
        raise CommandTimeoutError("hung", argv=list(argv))

    transport = FakeTransport(handler)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.errors import FileTransferError
from orchestrator.transport.base import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    OutputCapture,
    OutputSink,
    Transport,
    require_absolute,
    validate_argv,
)

#: Decides the outcome of one command: a full result, ``(exit_status, stdout, stderr)``, or an
#: error from :mod:`orchestrator.errors` raised to simulate a fault.
Handler = Callable[[tuple[str, ...], bytes | None], CommandResult | tuple[int, bytes, bytes]]


@dataclass(frozen=True)
class FakeCall:
    """One :meth:`FakeTransport.run` call, as the code under test made it."""

    argv: tuple[str, ...]
    stdin: bytes | None
    timeout: float | None


def _succeed(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    return 0, b"", b""


class FakeTransport(Transport):
    """A transport whose commands are answered by ``handler`` and whose files live in a dict.

    ``files`` maps absolute remote paths to contents; ``modes`` records the mode of each put.
    Output of tuple results goes through the same cap and ``on_output`` streaming as real
    transports; a :class:`CommandResult` from the handler is returned as-is (with ``argv`` set).

    Raises:
        TransportError: malformed argv (checked like the real transports), or whatever error of
            the tree ``handler`` raises.
        FileTransferError: ``get_file`` of a path not in ``files`` or larger than ``max_bytes``;
            relative remote paths.
    """

    def __init__(
        self,
        handler: Handler = _succeed,
        *,
        host: str = "fake",
        files: dict[str, bytes] | None = None,
    ) -> None:
        self.host = host
        self.handler = handler
        self.files: dict[str, bytes] = {} if files is None else files
        self.modes: dict[str, int] = {}
        self.calls: list[FakeCall] = []
        self.is_closed = False

    @property
    def argvs(self) -> list[tuple[str, ...]]:
        """The argv of every call so far, in order (the common thing to assert on)."""
        return [call.argv for call in self.calls]

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
        self.calls.append(FakeCall(args, stdin, timeout))
        outcome = self.handler(args, stdin)
        if isinstance(outcome, CommandResult):
            return replace(outcome, argv=args)
        exit_status, stdout, stderr = outcome
        capture = OutputCapture(max_output, on_output)
        capture.feed("stdout", stdout)
        capture.feed("stderr", stderr)
        return capture.result(args, exit_status, 0.0)

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        require_absolute(remote, host=self.host)
        try:
            self.files[remote] = local.read_bytes()
        except OSError as exc:
            raise FileTransferError(
                f"{self.host}: cannot read {local}: {exc}", host=self.host
            ) from exc
        if mode is not None:
            self.modes[remote] = mode

    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        require_absolute(remote, host=self.host)
        if remote not in self.files:
            raise FileTransferError(f"{self.host}: {remote}: no such file", host=self.host)
        data = self.files[remote]
        if max_bytes is not None and len(data) > max_bytes:
            raise FileTransferError(
                f"{self.host}: {remote} is {len(data)} bytes, larger than the {max_bytes} allowed",
                host=self.host,
            )
        try:
            local.write_bytes(data)
        except OSError as exc:
            raise FileTransferError(
                f"{self.host}: cannot write {local}: {exc}", host=self.host
            ) from exc

    def close(self) -> None:
        self.is_closed = True
