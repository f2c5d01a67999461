"""A scripted systemd for bounded restarts: units that restart, fail to start, or hang in their stop.

Use as a FakeTransport handler (``FakeTransport(FakeSystemd())``). ``systemctl --no-block restart``
queues a job: the next ``show`` still answers the old run (``deactivating``/``stop-sigterm``), the
one after the unit's fate: ``active``/``running`` in a new invocation, ``failed`` for a unit in
``fail``, and for a unit in ``hang`` ``deactivating``/``stop-sigterm`` for ever, until ``systemctl
kill --signal=SIGKILL`` leaves it ``failed``/``failed``. Other argv go to ``fallback``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.errors import CommandTimeoutError

Handler = Callable[[tuple[str, ...], bytes | None], tuple[int, bytes, bytes]]


def _ok(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    return 0, b"", b""


def hangs_on(verb: str) -> Handler:
    """A handler whose ``systemctl VERB`` times out; every other command exits 0."""
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[1] == verb:
            raise CommandTimeoutError("fake: hung", argv=list(argv))
        return 0, b"", b""
    return handler


@dataclass
class Clock:
    """Monotonic seconds that only move when the code under test sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeUnit:
    active: str = "active"
    sub: str = "running"
    invocation: int = 1
    #: ``show`` answers left before the queued restart job runs.
    pending: int = 0
    #: Automatic restarts since the last deliberate start, and how the last run ended.
    n_restarts: int = 0
    result: str = "success"


@dataclass
class FakeSystemd:
    hang: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    fallback: Handler = _ok
    units: dict[str, FakeUnit] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    argvs: list[tuple[str, ...]] = field(default_factory=list)

    def unit(self, name: str) -> FakeUnit:
        return self.units.setdefault(name, FakeUnit())

    def restarts(self) -> list[str]:
        return [a[-1] for a in self.argvs if a[1:3] == ("--no-block", "restart")]

    def __call__(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] != "systemctl":
            return self.fallback(argv, stdin)
        self.argvs.append(argv)
        if argv[1] == "show":
            units = argv[argv.index("--") + 1:]
            return 0, "\n".join(self._show(name, self.unit(name)) for name in units).encode(), b""
        name, unit = argv[-1], self.unit(argv[-1])
        if argv[1:3] == ("--no-block", "restart"):
            if name in self.refuse:
                return 5, b"", f"Failed to restart {name}: Unit {name} not found.\n".encode()
            unit.active, unit.sub, unit.pending = "deactivating", "stop-sigterm", 1
            return 0, b"", b""
        if argv[1] == "kill":
            self.killed.append(name)
            if unit.active in ("deactivating", "activating"):
                unit.active, unit.sub = "failed", "failed"
            return 0, b"", b""
        return self.fallback(argv, stdin)

    def _show(self, name: str, unit: FakeUnit) -> str:
        if unit.pending > 0:
            unit.pending -= 1
        elif unit.active == "deactivating" and name not in self.hang:
            unit.active, unit.sub = ("failed", "failed") if name in self.fail else ("active", "running")
            unit.invocation += 1
        return (f"Id={name}\nActiveState={unit.active}\nSubState={unit.sub}\n"
                f"InvocationID=inv{unit.invocation:08d}\nNRestarts={unit.n_restarts}\nResult={unit.result}\n")
