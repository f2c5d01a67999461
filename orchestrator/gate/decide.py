"""One gate decision: the evaluation under a deadline, ``gate.on_error``, and its audit record.

The evaluation runs on a daemon thread and the caller waits at most ``deadline_s``: a hung command
or agent must not hold the unit's start until systemd's own TimeoutStartSec kills it. Any error of
the evaluation, a bug included (hence the broad ``except``), and a missed deadline are the gate's
own failure, decided by ``on_error``: ``allow`` by default, because a bug in vmrepair must not keep a
service down; the failure is logged loudly and audited either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.audit.sink import AuditSink
from orchestrator.errors import VmRepairError
from orchestrator.model import ProbeResult

log = logging.getLogger(__name__)

OnError = Literal["allow", "refuse"]
ALLOWED_EVENT = "gate_allowed"
REFUSED_EVENT = "gate_refused"


@dataclass(frozen=True)
class Verdict:
    """Whether ``unit`` may start, and why (``reason`` is the one line the journal shows)."""

    unit: str
    component: str | None
    allowed: bool
    reason: str
    failed: tuple[ProbeResult, ...] = ()
    warnings: tuple[ProbeResult, ...] = ()
    checked: tuple[str, ...] = ()
    #: The gate's own failure (then ``allowed`` is what ``gate.on_error`` says).
    error: str | None = None
    #: The evaluation still runs past the deadline (its thread is abandoned).
    is_abandoned: bool = False
    elapsed_s: float = 0.0


def decide(unit: str, evaluate: Callable[[], Verdict], *, deadline_s: float, on_error: OnError,
           clock: Callable[[], float] = time.monotonic) -> Verdict:
    """Run ``evaluate`` within ``deadline_s``; its errors and a missed deadline become a verdict by
    ``on_error``. Never raises."""
    started = clock()
    box: list[Verdict | BaseException] = []

    def work() -> None:
        try:
            box.append(evaluate())
        except BaseException as exc:  # noqa: BLE001 - any failure of the gate is decided by on_error
            box.append(exc)

    worker = threading.Thread(target=work, name=f"gate-{unit}", daemon=True)
    worker.start()
    worker.join(deadline_s)
    elapsed = clock() - started
    if not box:
        return failure(unit, f"no decision within the {deadline_s:g} s deadline", on_error,
                       elapsed_s=elapsed, is_abandoned=True)
    outcome = box[0]
    if isinstance(outcome, Verdict):
        return replace(outcome, elapsed_s=elapsed)
    if isinstance(outcome, VmRepairError):
        message = outcome.message
    else:
        message = f"{type(outcome).__name__}: {outcome}"
        # Not a condition of the host but a defect of vmrepair: keep the traceback for the report.
        log.error("gate %s: internal error", unit, exc_info=outcome)
    return failure(unit, message, on_error, elapsed_s=elapsed)


def failure(unit: str, message: str, on_error: OnError, *, elapsed_s: float = 0.0,
            is_abandoned: bool = False, component: str | None = None) -> Verdict:
    """The verdict when the gate itself failed with ``message``."""
    allowed = on_error == "allow"
    action = "allowing the start" if allowed else "refusing the start"
    log.error("gate %s failed (%s, gate.on_error: %s): %s", unit, action, on_error, message)
    return Verdict(unit, component, allowed=allowed,
                   reason=f"the gate failed, {action} (gate.on_error: {on_error}): {message}",
                   error=message, is_abandoned=is_abandoned, elapsed_s=elapsed_s)


def record_verdict(audit: AuditSink, verdict: Verdict) -> None:
    """``gate_allowed`` / ``gate_refused``; a refusal is fsynced (it changes what runs). The caller
    passes a quiet sink: a failed record must not change the decision."""
    details: dict[str, object] = {
        "unit": verdict.unit, "reason": verdict.reason, "checked": list(verdict.checked),
        "failed": [{"probe": r.probe, "kind": r.kind.value, "summary": r.summary} for r in verdict.failed],
        "warnings": [{"probe": r.probe, "summary": r.summary} for r in verdict.warnings],
        "elapsed_s": round(verdict.elapsed_s, 3),
    }
    if verdict.error is not None:
        details["error"] = verdict.error
    audit.record(ALLOWED_EVENT if verdict.allowed else REFUSED_EVENT,
                 component=verdict.component or verdict.unit,
                 status="allowed" if verdict.allowed else "refused", details=details,
                 durable=not verdict.allowed)
