"""The health monitor's test harness: a scripted target (FakeHost, FakeSystemd, per-URL answers) behind
the shared FakeTransport, a clock that moves only when told, and the escalations collected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.audit.sink import MemoryAuditSink
from orchestrator.bootdiag.dependencies import score_on_target
from orchestrator.components.config import WatchConfig
from orchestrator.config.daemon import HealthSettings
from orchestrator.health import HealthEvent, HealthMonitor
from orchestrator.health.monitor import Escalate, Score
from orchestrator.model import Component, HttpCheck, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost
from tests.unit.systemd.fakes import Clock, FakeSystemd

HEALTH = "http://127.0.0.1:8080/health"
READY = "http://127.0.0.1:8080/ready"
APP = Component(name="app", units=("app.service",), http=(HttpCheck(HEALTH), HttpCheck(READY)))
WEB = Component(name="web", units=("nginx.service",), config_test=("nginx", "-t"),
                http=(HttpCheck("http://127.0.0.1:80/"),))
QUIET = Component(name="quiet", units=("cron.service",))
WINDOW = 900.0


@dataclass
class Target:
    """FakeHost plus per-URL answer queues (the last answer repeats) and failing restarts."""

    host: FakeHost = field(default_factory=FakeHost)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    systemd: FakeSystemd = field(default_factory=FakeSystemd)

    def __post_init__(self) -> None:
        self.systemd.fallback = self.host

    def set(self, url: str, *statuses: str) -> None:
        self.statuses[url] = list(statuses)

    def handler(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "curl" and argv[-1] in self.statuses:
            queue = self.statuses[argv[-1]]
            status = queue.pop(0) if len(queue) > 1 else queue[0]
            return (0 if status != "000" else 7), status.encode(), b""
        if argv[0] == "systemctl":
            return self.systemd(argv, stdin)
        return self.host(argv, stdin)


@dataclass
class Harness:
    target: Target
    transport: FakeTransport
    monitor: HealthMonitor
    audit: MemoryAuditSink
    clock: Clock
    sleeps: list[float]
    escalations: list[tuple[str, str]]
    #: The severity each escalation carried, in the same order.
    severities: list[Severity]

    def poll(self, advance: float = 15.0) -> list[HealthEvent]:
        self.clock.now += advance
        return self.monitor.poll_once()

    def restarts(self) -> list[str]:
        return self.target.systemd.restarts()


def kinds(events: list[HealthEvent]) -> list[str]:
    return [str(e.kind) for e in events]


def harness_factory() -> Callable[..., Harness]:
    """What the ``make`` fixture gives: ``make(*components, escalate=, score=, **health_settings)``."""

    def factory(*components: Component, escalate: Escalate | None = None,
                score: Score = score_on_target, **settings: float) -> Harness:
        target = Target()
        transport = FakeTransport(target.handler)
        audit, clock, sleeps = MemoryAuditSink(), Clock(), []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock.now += seconds
        escalations: list[tuple[str, str]] = []
        severities: list[Severity] = []

        def record(name: str, reason: str, severity: Severity, /) -> None:
            escalations.append((name, reason))
            severities.append(severity)
        monitor = HealthMonitor(
            WatchConfig(components or (APP,)), HealthSettings(**settings), transport, audit,
            escalate or record, clock=clock, sleep=sleep, score=score)
        return Harness(target, transport, monitor, audit, clock, sleeps, escalations, severities)

    return factory
