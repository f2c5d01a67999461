"""``port:<component>:<n>`` probes: is something still listening on each TCP port the component
listened on when it was discovered?

Nothing listening on the port → PORT_DOWN, critical for a vital component, a warning otherwise. Any
local address counts (``0.0.0.0``, ``[::]``, ``127.0.0.1``, one interface): the component recorded
port numbers, not addresses. Which process listens is not checked (that needs ``ss -p``, root and
more output); a unit probe of the same component says whether its service runs.

Where the list comes from, decided once per detector run (:class:`~orchestrator.detect.shared.RunShared`:
every port probe of a run shares one answer):

1. ``ss -H -ltn`` through the transport. The kernel filters the listening sockets (sock_diag), so the
   output grows with the number of listeners, not of connections; iproute2 is on every Debian system.
2. When ss is missing or fails (minimal containers), ``/proc/net/tcp`` and ``/proc/net/tcp6`` through
   the agent (state ``0A`` is LISTEN). Not the first choice, although it saves a command: those files
   list every connection (about 150 bytes each), so a busy server's are megabytes, read again at every
   run, and past :data:`PROC_MAX_BYTES` the read is refused.

The listing cannot be trusted when it was cut short (ss output past :data:`SS_OUTPUT_MAX`): a port found
in it passes, a port not found makes the probe unavailable rather than failed. Lines that are not a
socket are skipped (counted in the evidence); the output is untrusted and never echoed whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.agent.api import AgentApi
from orchestrator.detect.common import ProbeId, cap_evidence
from orchestrator.detect.shared import RunShared
from orchestrator.errors import AgentError, AgentFailedError, CommandTimeoutError
from orchestrator.model import Component, IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport
from orchestrator.transport.installed import run_if_installed

PREFIX = "port:"
SS_ARGV = ("ss", "-H", "-ltn")
SS_TIMEOUT_S = 30.0
#: About 40,000 listeners at ~100 bytes a line.
SS_OUTPUT_MAX = 4 * 1024 * 1024
PROC_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
PROC_MAX_BYTES = 16 * 1024 * 1024
#: Lines of either source looked at; the caps above keep real listings far below it.
MAX_LINES = 200_000
#: Listening ports named in a failure's evidence.
MAX_LISTED_PORTS = 64
_LISTEN_HEX = "0A"
_PORT = re.compile(r"^[0-9]{1,5}$")
_SS_STATE = re.compile(r"^[A-Z][A-Z0-9-]{1,15}$")
_PROC_LOCAL = re.compile(r"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$")


def probe_name(component: Component, port: int) -> str:
    return f"{PREFIX}{component.name}:{port}"


@dataclass(frozen=True)
class Listening:
    """The TCP ports something listens on, and how that was learnt (or why it could not be)."""

    ports: frozenset[int] = frozenset()
    source: str = ""
    #: Lines of the listing that were not a socket.
    rejected: int = 0
    #: The listing was cut at a cap: a port missing from it may still be listened on.
    is_truncated: bool = False
    unavailable_reason: str | None = None


def _port(text: str) -> int | None:
    if not _PORT.match(text):
        return None
    number = int(text)
    return number if 0 < number < 65536 else None


def parse_ss(text: str) -> tuple[frozenset[int], int]:
    """Ports of ``ss -H -ltn`` lines, and the number of lines that were not a listening socket.

    A line is ``State Recv-Q Send-Q Local:Port Peer:Port`` (``LISTEN 0 511 0.0.0.0:80 0.0.0.0:*``);
    the local address is the first ``address:port`` word whatever columns come before it (the state
    column is not printed by every ss), and its port is what follows the last colon, so IPv6
    (``[::]:80``), the dual-stack wildcard (``*:22``) and a bound interface (``127.0.0.53%lo:53``)
    all parse. A line in another state than LISTEN is skipped.
    """
    ports: set[int] = set()
    rejected = 0
    for line in text.splitlines()[:MAX_LINES]:
        words = line.split()
        if not words:
            continue
        if _SS_STATE.match(words[0]) and words[0] != "LISTEN":
            rejected += 1
            continue
        port = next((p for w in words if ":" in w and (p := _port(w.rpartition(":")[2])) is not None),
                    None)
        if port is None:
            rejected += 1
        else:
            ports.add(port)
    return frozenset(ports), rejected


def parse_proc_net_tcp(text: str) -> tuple[frozenset[int], int]:
    """Listening ports of ``/proc/net/tcp`` or ``tcp6`` (``sl local_address rem_address st ...``, the
    local port in hex after the colon, state ``0A`` = LISTEN) and the number of malformed lines."""
    ports: set[int] = set()
    rejected = 0
    for line in text.splitlines()[1:MAX_LINES]:   # the first line is the header
        words = line.split()
        if not words:
            continue
        match = _PROC_LOCAL.match(words[1]) if len(words) > 3 else None
        if match is None or not re.fullmatch(r"[0-9A-Fa-f]{2}", words[3]):
            rejected += 1
            continue
        port = int(match.group(1), 16)
        if words[3].upper() == _LISTEN_HEX and port:
            ports.add(port)
    return frozenset(ports), rejected


def load_listening(transport: Transport, agent: AgentApi) -> Listening:
    """What listens on the target: ``ss`` first, ``/proc/net/tcp{,6}`` when ss cannot answer.

    Raises:
        TransportError: the target cannot be reached (a missing ss or an agent failure is not an error).
    """
    try:
        result = run_if_installed(transport, SS_ARGV, timeout=SS_TIMEOUT_S, max_output=SS_OUTPUT_MAX)
    except CommandTimeoutError:
        why = f"ss did not answer within {SS_TIMEOUT_S:g} s"
    else:
        if result is not None and result.succeeded:
            ports, rejected = parse_ss(result.stdout_text)
            return Listening(ports, " ".join(SS_ARGV), rejected, is_truncated=bool(result.stdout_dropped))
        why = ("ss is not installed" if result is None
               else f"ss exited {result.exit_status}: {cap_evidence(result.stderr.strip(), 200)}")
    return _from_proc(agent, why)


def _from_proc(agent: AgentApi, why: str) -> Listening:
    ports: set[int] = set()
    rejected = 0
    for path in PROC_TCP:
        try:
            data = agent.read_file(path, max_bytes=PROC_MAX_BYTES)
        except AgentFailedError as exc:
            if exc.code == "not_found" and path.endswith("6"):
                continue   # IPv6 disabled in the kernel: nothing listens on it
            return Listening(unavailable_reason=f"{why}, and the agent could not read {path}: {exc.message}")
        except AgentError as exc:
            return Listening(unavailable_reason=f"{why}, and the agent could not read {path}: {exc.message}")
        found, bad = parse_proc_net_tcp(data.decode("ascii", errors="replace"))
        ports |= found
        rejected += bad
    return Listening(frozenset(ports), f"{'/'.join(PROC_TCP)} ({why})", rejected)


def shared_listening(transport: Transport, agent: AgentApi) -> RunShared[Listening]:
    """The listing every port probe of one detector run shares (one ss per run)."""
    return RunShared("listening TCP ports", functools.partial(load_listening, transport, agent))


def _listed(ports: Iterable[int]) -> str:
    ordered = sorted(ports)
    text = " ".join(map(str, ordered[:MAX_LISTED_PORTS]))
    more = len(ordered) - MAX_LISTED_PORTS
    return f"{text} (and {more} more)" if more > 0 else text or "(none)"


def evaluate(component: Component, port: int, listening: Listening) -> ProbeResult:
    """The probe's result for one port of ``component`` (rules in the module docstring)."""
    pid = ProbeId(probe_name(component, port), component.name, IssueKind.PORT_DOWN, f"tcp/{port}")
    if not _is_port(port):
        return pid.unavailable(f"{port!r} is not a TCP port")
    if listening.unavailable_reason is not None:
        return pid.unavailable(listening.unavailable_reason)
    evidence = {"port": str(port), "source": cap_evidence(listening.source, 512)}
    if listening.rejected:
        evidence["rejected_lines"] = str(listening.rejected)
    if port in listening.ports:
        return pid.passed(f"{component.name}: TCP port {port} is listened on", evidence)
    if listening.is_truncated:
        return pid.unavailable(f"TCP port {port} is not in the first {SS_OUTPUT_MAX} bytes of the "
                               f"listing, which was cut there", evidence)
    evidence["listening"] = _listed(listening.ports)
    units = " ".join(component.units)
    evidence["remedy"] = (f"systemctl restart {units}  (then journalctl -u {component.units[0]} if it "
                          f"does not come back)" if component.units
                          else f"start what serves {component.name} on port {port}")
    severity = Severity.CRITICAL if component.vital else Severity.WARNING
    return pid.failed(severity, f"{component.name}: nothing listens on TCP port {port} any more "
                      f"(it did when the component was discovered)", evidence)


def _is_port(port: int) -> bool:
    return not isinstance(port, bool) and 0 < port < 65536


def probe_port(listening: RunShared[Listening], component: Component, port: int) -> ProbeResult:
    """Raises: TransportError: the target cannot be reached."""
    return evaluate(component, port, listening.get() if _is_port(port) else Listening())
