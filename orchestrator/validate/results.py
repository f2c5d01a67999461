"""What validation found: per-check results grouped into layers, and the overall verdict.

Invariant: a layer passes only when it ran, recorded at least one check, and every check passed. A layer
that could not run (no systemd, guest unreachable, no probes) fails: a false "repaired" is the worst
outcome vmrepair can produce, so "unknown" never counts as "passed".
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.errors import VmRepairError
from orchestrator.session.store import cap_text

#: Cap on a check's detail text (it often quotes guest output).
MAX_DETAIL = 2000


class LayerName(StrEnum):
    RESOLVED = "resolved"
    STABLE = "stable"
    NO_REGRESSIONS = "no_regressions"
    CORE_FEATURES = "core_features"


class LayerStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: Not run because an earlier layer failed; counts as a failure.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail,
                "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True)
class LayerReport:
    name: LayerName
    status: LayerStatus
    checks: tuple[CheckResult, ...] = ()
    detail: str = ""
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status is LayerStatus.PASSED

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @classmethod
    def skipped(cls, name: LayerName, reason: str) -> LayerReport:
        return cls(name, LayerStatus.SKIPPED, detail=reason)

    def as_dict(self) -> dict[str, object]:
        return {"name": str(self.name), "status": str(self.status), "passed": self.passed,
                "detail": self.detail, "duration_s": round(self.duration_s, 3),
                "checks": [c.as_dict() for c in self.checks]}


@dataclass(frozen=True)
class ValidationReport:
    passed: bool
    layers: list[LayerReport]
    issue: str = ""
    component: str = ""

    def layer(self, name: LayerName) -> LayerReport:
        """Raises: KeyError: no layer of that name was recorded."""
        for layer in self.layers:
            if layer.name is name:
                return layer
        raise KeyError(name)

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "issue": self.issue, "component": self.component,
                "layers": [layer.as_dict() for layer in self.layers]}


@dataclass
class LayerRecorder:
    """Collects the checks of one layer, timing each with the injected ``clock``.

    :meth:`check` turns an error of our tree into a failed check (with the error's message): a check
    that cannot be answered fails. Anything else is a bug and propagates.
    """

    name: LayerName
    clock: Callable[[], float]
    checks: list[CheckResult] = field(default_factory=list)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add(self, name: str, ok: bool, detail: str = "", duration_s: float = 0.0) -> CheckResult:
        result = CheckResult(name, ok, cap_text(detail, MAX_DETAIL), max(0.0, duration_s))
        self.checks.append(result)
        return result

    def check(self, name: str, call: Callable[[], tuple[bool, str]]) -> bool:
        ok, detail, seconds = self._timed(call)
        return self.add(name, ok, detail, seconds).ok

    def check_all(self, named: Sequence[tuple[str, Callable[[], tuple[bool, str]]]], *,
                  workers: int) -> bool:
        """:meth:`check` each (name, call), up to ``workers`` at once; recorded in the given order.
        The calls must be independent reads (each one its own command in the guest)."""
        if workers <= 1 or len(named) <= 1:
            verdicts = [self.check(name, call) for name, call in named]  # every one, no short cut
            return all(verdicts)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                   thread_name_prefix="check") as pool:
            timed = [pool.submit(self._timed, call) for _, call in named]
            for (name, _), future in zip(named, timed, strict=True):
                ok, detail, seconds = future.result()
                self.add(name, ok, detail, seconds)
        return all(c.ok for c in self.checks[-len(named):])

    def _timed(self, call: Callable[[], tuple[bool, str]]) -> tuple[bool, str, float]:
        began = self.clock()
        try:
            ok, detail = call()
        except VmRepairError as exc:
            ok, detail = False, f"could not check: {exc.message}"
        return ok, detail, self.clock() - began

    def finish(self, detail: str = "") -> LayerReport:
        duration = max(0.0, self.clock() - self.started)
        if not self.checks:
            return LayerReport(self.name, LayerStatus.FAILED, (),
                               detail or "no check ran, so nothing was verified", duration)
        status = LayerStatus.PASSED if all(c.ok for c in self.checks) else LayerStatus.FAILED
        if not detail:
            failed = sum(not c.ok for c in self.checks)
            detail = (f"all {len(self.checks)} checks passed" if status is LayerStatus.PASSED
                      else f"{failed} of {len(self.checks)} checks failed")
        return LayerReport(self.name, status, tuple(self.checks), cap_text(detail, MAX_DETAIL), duration)
