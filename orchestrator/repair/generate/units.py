"""Family ``systemd``: the unit's own state, as systemd in the VM reports it against the baseline.

Evidence and what it proposes, per unit of the component (the issue's own first):

- masked (``UnitFileState``/``LoadState`` masked) → unmask, then start;
- disabled while the baseline had it enabled → enable, then start;
- failed or inactive → reset-failed and start (the cheapest thing that can work);
- a drop-in added since the baseline (the newest, under the unit's drop-in directory) → quarantine it,
  reload systemd, restart;
- a unit file under /etc that differs from the baseline, or is gone → restore it, reload, restart.
"""

from __future__ import annotations

import posixpath

from orchestrator.model import IssueKind
from orchestrator.repair.generate import followups
from orchestrator.repair.generate.drift import drift
from orchestrator.repair.generate.proposal import Proposal, RawStep, literal
from orchestrator.repair.generate.situation import Situation, quote
from orchestrator.steps.paths import within_any

FAMILY = "systemd"
KINDS = frozenset({IssueKind.UNIT_FAILED, IssueKind.UNIT_INACTIVE, IssueKind.PORT_DOWN,
                   IssueKind.HTTP_DOWN, IssueKind.SYSTEM_DEGRADED})
ETC_UNITS = "/etc/systemd/system"
_ENABLED = frozenset({"enabled", "enabled-runtime"})
_DOWN = frozenset({"failed", "inactive"})
#: ActiveState of a unit that runs (or is getting there).
_UP = frozenset({"active", "activating", "reloading"})


def _unit_step(unit: str, action: str) -> dict[str, dict[str, str]]:
    return {"unit": {"name": literal(unit), "action": action}}


def generate(situation: Situation) -> list[Proposal]:
    if situation.issue.kind not in KINDS:
        return []
    proposals: list[Proposal] = []
    for unit in situation.units:
        proposals += _state(situation, unit)
        proposals += _dropin(situation, unit)
        proposals += _unit_file(situation, unit)
    return proposals


def _state(situation: Situation, unit: str) -> list[Proposal]:
    shown = situation.show(unit)
    if not shown:
        return []
    file_state, load = shown.get("UnitFileState", ""), shown.get("LoadState", "")
    active = shown.get("ActiveState", "")
    then = situation.baseline.units.get(unit, {}) if situation.baseline is not None else {}
    then_file = str(then.get("UnitFileState") or "") if isinstance(then, dict) else ""
    said = f"systemd in the VM: {quote(unit)} is {quote(load)}/{quote(file_state or '?')}/{quote(active)}"
    out: list[Proposal] = []
    if "masked" in (file_state, load):
        out.append(Proposal(
            FAMILY, "unmask", unit, f"Unmask {quote(unit)} and start it ({said}).",
            (_unit_step(unit, "unmask"), {"unit": {"action": "daemon-reload"}}, *followups.start(unit)),
            effectiveness=0.85, cause="unit_masked", confidence=0.9 if then_file != "masked" else 0.5))
        return out
    if file_state == "disabled" and then_file in _ENABLED:
        # The component's sockets disabled since the baseline too (rsyslog needs syslog.socket): the
        # service cannot start before they are enabled and listening again.
        sockets = _disabled_since_baseline(situation, situation.component.sockets)
        also = f" with {', '.join(quote(s) for s in sockets)}" if sockets else ""
        if active in _UP:
            # Running without what it requires (rsyslog restarted while syslog.socket was down):
            # once enabled, a `start` pulls the socket in, and systemd refuses to start a socket
            # whose service already runs ("A dependency job ... failed"). Stopped first, the unit
            # comes back up the way the next boot starts it: its sockets, then itself.
            steps: tuple[RawStep, ...] = (
                *(_unit_step(s, "enable") for s in sockets), _unit_step(unit, "enable"),
                _unit_step(unit, "reset-failed"), _unit_step(unit, "stop"),
                *(_unit_step(s, "start") for s in sockets), _unit_step(unit, "start"),
                {"wait_active": {"unit": literal(unit)}})
            how = "restart it with what it requires"
        else:
            steps = (*(step for s in sockets for step in (_unit_step(s, "enable"), _unit_step(s, "start"))),
                     _unit_step(unit, "enable"), *followups.start(unit))
            how = "start it"
        out.append(Proposal(
            FAMILY, "enable", unit,
            f"Enable {quote(unit)}{also} again and {how} ({said}; the baseline had it "
            f"{quote(then_file)}).",
            steps, effectiveness=0.85, cause="unit_disabled", confidence=0.85))
    if active in _DOWN and load == "loaded":
        out.append(Proposal(
            FAMILY, "start", unit, f"Reset the failed state of {quote(unit)} and start it ({said}).",
            followups.start(unit), effectiveness=0.5, cause="unit_down", confidence=0.5))
    return out


def _disabled_since_baseline(situation: Situation, units: tuple[str, ...]) -> list[str]:
    """Those of ``units`` that are disabled in the VM and were enabled in the baseline."""
    if situation.baseline is None:
        return []
    found = []
    for unit in units:
        then = situation.baseline.units.get(unit, {})
        then_file = str(then.get("UnitFileState") or "") if isinstance(then, dict) else ""
        if then_file in _ENABLED and situation.show(unit).get("UnitFileState") == "disabled":
            found.append(unit)
    return found


def _dropin(situation: Situation, unit: str) -> list[Proposal]:
    """The newest drop-in added since the baseline in the unit's /etc drop-in directory."""
    directory = f"{ETC_UNITS}/{unit}.d"
    added = [d for d in drift(situation, [directory]) if d.change == "added" and d.now is not None
             and d.now.type in ("file", "symlink") and d.path.endswith(".conf")
             and posixpath.dirname(d.path) == directory]
    if not added or not within_any(directory, situation.component.unit_paths):
        return []
    newest = max(added, key=lambda d: (d.mtime, d.path))
    return [Proposal(
        FAMILY, "quarantine-dropin", newest.path,
        f"Quarantine the drop-in {quote(newest.path)} of {quote(unit)}: added since the baseline"
        + (f" (the newest of {len(added)})" if len(added) > 1 else "") + ".",
        ({"quarantine": {"path": literal(newest.path), "within": [directory]}},
         {"unit": {"action": "daemon-reload"}}, *followups.restart(unit)),
        effectiveness=0.8, cause="dropin_added", confidence=0.85 if situation.names(newest.path) else 0.75)]


def _unit_file(situation: Situation, unit: str) -> list[Proposal]:
    path = f"{ETC_UNITS}/{unit}"
    changed = [d for d in drift(situation, [path]) if d.path == path and d.change in ("content", "deleted")]
    if not changed:
        return []
    return [Proposal(
        FAMILY, "restore-unit-file", path,
        f"Restore the unit file {quote(path)} from the baseline: {quote(changed[0].describe())}.",
        ({"restore_baseline": {"paths": [literal(path)]}}, {"unit": {"action": "daemon-reload"}},
         *followups.restart(unit)),
        effectiveness=0.8, cause="unit_file_changed", confidence=0.8)]
