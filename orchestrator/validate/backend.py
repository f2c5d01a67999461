"""pytest-testinfra over OUR transport: the only module of vmrepair that imports :mod:`testinfra`.

Why not testinfra's own ``ssh://`` or ``paramiko://`` backends:

* host keys: the guest's key is pinned per VM (:class:`~orchestrator.transport.ssh.ParamikoTransport`
  refuses any other key); testinfra's backends read ``~/.ssh/config`` / known_hosts, or spawn ssh(1)
  processes, and cannot be made to pin the key the way we must;
* one persistent session: our transport keeps one authenticated connection (TCP_NODELAY) for the whole
  validation, so a check pays only for its own command: about 2 ms per small command round trip
  (FIELD_NOTES, SSH) instead of the ~200 ms testinfra's ``ssh://`` backend adds for a new ssh process
  and handshake per check. The stability layer re-runs every check every 2 s, so that overhead would
  eat the budget. (Under TCG the guest's own process start-up still costs ~100 ms per command:
  measured 100 ms for ``true``, 250 ms for ``host.service(...).is_running``, on a template VM.)
* one deadline and one error tree: every command gets our wall-clock timeout (paramiko issue 1815) and
  fails with our :class:`~orchestrator.errors.TransportError` subclasses.

testinfra is untyped, so :class:`GuestHost` wraps the few checks validation uses behind typed methods
and maps whatever testinfra raises on unexpected output to :class:`GuestCheckError`; no ``Any`` from
testinfra leaves this module (except through :func:`make_testinfra_host`, which returns the raw Host).
"""

from __future__ import annotations

import contextlib
import functools
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import testinfra.backend.base
import testinfra.host

from orchestrator.errors import GuestCheckError, VmRepairError
from orchestrator.session.store import cap_text
from orchestrator.transport.base import Transport

#: Deadline of one check command (seconds); checks are quick, a hung one must not stall validation.
CHECK_TIMEOUT_S = 30.0
#: Output kept per stream of a check command; testinfra only parses short outputs.
CHECK_MAX_OUTPUT = 1024 * 1024

_T = TypeVar("_T")


class TransportBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]  # testinfra is untyped
    """A testinfra backend that runs every command as ``sh -c <cmd>`` through a :class:`Transport`.

    testinfra formats and quotes its own command lines (``self.get_command(command, *args)``, with
    :func:`shlex.quote` for every argument); we hand the result to ``sh -c`` as one argv element, which
    the transport quotes again for the remote shell. Output is decoded as UTF-8 with replacement, so
    hostile bytes never trigger testinfra's "ask the host for its locale" round trip or a decode error.

    Raises (from :meth:`run`): whatever the transport raises — CommandTimeoutError, ConnectError,
    TransportError. A non-zero exit is a result, not an error.
    """

    NAME = "vmrepair"

    def __init__(self, transport: Transport, *, timeout: float = CHECK_TIMEOUT_S) -> None:
        super().__init__(transport.host)
        self._transport = transport
        self._timeout = timeout

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        cmd = self.get_command(command, *args)
        timeout = kwargs.get("timeout") or self._timeout
        result = self._transport.run(["sh", "-c", cmd], timeout=timeout, max_output=CHECK_MAX_OUTPUT)
        return self.result(result.exit_status, self.encode(cmd), result.stdout, result.stderr)

    def get_encoding(self) -> str:
        return "utf-8"

    def decode(self, data: bytes) -> str:
        return data.decode("utf-8", errors="replace")

    def encode(self, data: str) -> bytes:
        return data.encode("utf-8", errors="surrogateescape")


# Not ``testinfra_host``: pytest would collect a function named test* imported into a test module.
def make_testinfra_host(transport: Transport, *, timeout: float = CHECK_TIMEOUT_S) -> Any:
    """A ``testinfra.host.Host`` whose commands run through ``transport`` (``host.service``,
    ``host.file``, ``host.socket``, ``host.run``, ``host.package`` ...). Untyped: prefer
    :class:`GuestHost` outside this module."""
    backend = TransportBackend(transport, timeout=timeout)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


@dataclass(frozen=True)
class GuestCommand:
    """Outcome of :meth:`GuestHost.run`; output is untrusted guest text."""

    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0


class GuestHost:
    """The typed checks validation needs, answered by testinfra over our transport.

    Every method raises:
        GuestCheckError: testinfra could not interpret the guest's answer, a tool it needs is missing,
            or (service checks) systemd is not running in the guest — never a silent ``False``.
        TransportError: (and subclasses) the command could not be run or timed out.
    """

    def __init__(self, transport: Transport, *, timeout: float = CHECK_TIMEOUT_S) -> None:
        self.name = transport.host
        self._host = make_testinfra_host(transport, timeout=timeout)

    @functools.cached_property
    def has_systemd(self) -> bool:
        """systemd is PID 1 (``/run/systemd/system`` exists, as ``sd_booted()`` checks)."""
        return self._checked("look for /run/systemd/system",
                             lambda: bool(self._host.file("/run/systemd/system/").is_directory))

    def warm_up(self) -> None:
        """Let testinfra learn the guest now (system info, which service manager: about eight commands,
        1.5 s under TCG), so the first service check later costs one command. Errors are left for the
        checks themselves to report."""
        with contextlib.suppress(Exception):
            if self.has_systemd:
                self._host.service  # noqa: B018 - the attribute resolves and caches the service class
            # Which socket tool the guest has (ss or netstat): learnt once, before checks run in threads.
            self._host.socket  # noqa: B018

    def service_is_running(self, unit: str) -> bool:
        self._require_systemd(unit)
        return self._checked(f"check whether {unit} is running",
                             lambda: bool(self._host.service(unit).is_running))

    def service_is_enabled(self, unit: str) -> bool:
        self._require_systemd(unit)
        return self._checked(f"check whether {unit} is enabled",
                             lambda: bool(self._host.service(unit).is_enabled))

    def file_exists(self, path: str) -> bool:
        return self._checked(f"check whether {path} exists", lambda: bool(self._host.file(path).exists))

    def socket_is_listening(self, spec: str) -> bool:
        """``spec`` as testinfra writes it: ``tcp://127.0.0.1:8080``. Needs ss or netstat in the guest."""
        return self._checked(f"check whether {spec} is listening",
                             lambda: bool(self._host.socket(spec).is_listening))

    def port_is_listening(self, address: str, port: int) -> bool:
        """Something accepts TCP connections on ``address:port``: bound to it, or to its family's wildcard.

        testinfra 10.2 answers False for ``tcp://127.0.0.1:P`` when the server is bound to 0.0.0.0:P
        only (its ``allipv4 in sockets`` tests a bool; pytest-testinfra issue 352), so the wildcard is
        asked for explicitly.
        """
        wildcard = "::" if ":" in address else "0.0.0.0"  # noqa: S104 - a spec to look up, not a bind
        return any(self.socket_is_listening(f"tcp://{host}:{port}") for host in (address, wildcard))

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> GuestCommand:
        """Run ``argv`` (quoted with :func:`shlex.join`) in the guest's shell; a non-zero exit is a result."""
        command = shlex.join(argv)

        def call() -> GuestCommand:
            # No extra args: testinfra formats with % only when args are given, so a literal % stays.
            out = self._host.run(command, timeout=timeout)
            return GuestCommand(command, int(out.rc), str(out.stdout), str(out.stderr))

        return self._checked(f"run {command}", call)

    def _require_systemd(self, unit: str) -> None:
        if not self.has_systemd:
            raise GuestCheckError(
                f"{self.name}: cannot check {unit}: systemd is not running in the guest "
                "(/run/systemd/system is missing)", host=self.name)

    def _checked(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except VmRepairError:
            raise
        # testinfra signals "unexpected answer" with assert (AssertionError), RuntimeError,
        # NotImplementedError, ValueError or an IndexError from parsing; each means the check has no
        # answer, which must fail the check rather than pass or crash validation.
        except Exception as exc:
            raise GuestCheckError(
                f"{self.name}: could not {what}: {type(exc).__name__}: {cap_text(str(exc), 500)}",
                host=self.name,
            ) from exc
