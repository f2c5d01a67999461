"""``system:state``: the systemd manager's own verdict on the host, ``systemctl is-system-running``.

- ``running`` passes.
- ``initializing`` / ``starting``: the boot has not finished; passes with a note (a unit whose start
  hangs shows up in that unit's own probe, and the state becomes ``degraded`` once it fails).
- ``degraded``: the host runs but at least one unit failed → SYSTEM_DEGRADED, warning. The failed
  units (``systemctl list-units --state=failed``; only valid unit names, at most
  :data:`MAX_LISTED_UNITS`, the rest counted) are the evidence, since any of them may be a unit no
  component watches.
- ``maintenance`` (rescue or emergency mode), ``emergency`` and ``stopping`` → SYSTEM_DEGRADED,
  critical: the host does not run its services, or is going down.
- anything else (``offline``: systemd not running as PID 1 or a chroot; no systemctl; no answer in
  time; a word systemd would not print): unavailable.
"""

from __future__ import annotations

from orchestrator import systemd
from orchestrator.detect.common import HOST_COMPONENT, ProbeId, cap_evidence
from orchestrator.model import IssueKind, ProbeResult, Severity
from orchestrator.transport.base import Transport

PROBE_NAME = "system:state"
SUBJECT = "systemd"
QUERY_TIMEOUT_S = systemd.SHOW_TIMEOUT_S
#: Failed units named in the evidence, each shortened to UNIT_CHARS (systemd allows 255).
MAX_LISTED_UNITS = 20
UNIT_CHARS = 128
_BOOTING = frozenset({"initializing", "starting"})
_DOWN = frozenset({"maintenance", "emergency", "stopping"})
PID = ProbeId(PROBE_NAME, HOST_COMPONENT, IssueKind.SYSTEM_DEGRADED, SUBJECT)


def evaluate(running: systemd.SystemRunning, failed: systemd.FailedUnits | None) -> ProbeResult:
    """The result for one ``is-system-running`` answer; ``failed`` is the failed-unit list (asked
    only when the state is ``degraded``)."""
    if running.unavailable_reason is not None:
        return PID.unavailable(running.unavailable_reason)
    state = running.state
    evidence = {"state": state}
    if state == "running":
        return PID.passed("systemd reports the system running", evidence)
    if state in _BOOTING:
        return PID.passed(f"systemd reports the system {state}: the boot has not finished yet", evidence)
    if state in _DOWN:
        return PID.failed(Severity.CRITICAL, f"systemd reports the system in {state}: its services are "
                          f"not running", evidence)
    if state == "degraded":
        evidence.update(_failed_evidence(failed))
        return PID.failed(Severity.WARNING, _degraded_summary(failed), evidence)
    return PID.unavailable(f"systemctl is-system-running answered {state!r}", evidence)


def _failed_evidence(failed: systemd.FailedUnits | None) -> dict[str, str]:
    if failed is None:
        return {}
    if failed.unavailable_reason is not None:
        return {"failed_units_error": cap_evidence(failed.unavailable_reason, 1024)}
    listed = failed.units[:MAX_LISTED_UNITS]
    left = len(failed.units) - len(listed) + failed.more
    # Names are validated (no control characters); shortening them keeps the whole list in the cap.
    lines = [_short(name) for name in listed]
    lines += [f"... and {left}{'+' if failed.is_truncated else ''} more"] if left else []
    evidence = {"failed_units": cap_evidence("\n".join(lines)),
                "failed_count": f"{len(failed.units) + failed.more}{'+' if failed.is_truncated else ''}"}
    if failed.rejected:
        evidence["rejected_lines"] = f"{failed.rejected} lines of the listing named no valid unit"
    return evidence


def _short(unit: str) -> str:
    return unit if len(unit) <= UNIT_CHARS else f"{unit[:UNIT_CHARS]}..."


def _degraded_summary(failed: systemd.FailedUnits | None) -> str:
    base = "systemd reports the system degraded"
    if failed is None or failed.unavailable_reason is not None:
        return f"{base}: at least one unit failed"
    count = len(failed.units) + failed.more
    if not count:
        return f"{base}, but lists no failed unit now"
    first = _short(failed.units[0])
    return f"{base}: {count} failed unit{'s' if count != 1 else ''}, first {first}"


def probe_system(transport: Transport) -> ProbeResult:
    """Ask systemd for the system's state (and the failed units when it is degraded).

    Raises:
        TransportError: the target cannot be reached.
    """
    running = systemd.system_running(transport, timeout=QUERY_TIMEOUT_S)
    degraded = running.unavailable_reason is None and running.state == "degraded"
    failed = systemd.failed_units(transport, timeout=QUERY_TIMEOUT_S) if degraded else None
    return evaluate(running, failed)
