"""Post-reboot verification of a pending fix: the checks that passed before the apply, and the issue's
own probe, must pass on the freshly booted target; and the target must not be in maintenance mode.

The plan (which probes, which boot fallback) is written into the transaction's journal when the fix is
applied (step ``verify_plan``), so any later process (``vmrepair reboot now``, the daemon after a
``window`` reboot, recovery at the first start after a local reboot) verifies exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.agent.api import AgentApi
from orchestrator.agent.client import RemoteAgent
from orchestrator.components import record
from orchestrator.components.config import WatchConfig
from orchestrator.detect.detector import Detector
from orchestrator.errors import ConfigError, StateError
from orchestrator.model import Component
from orchestrator.state.transactions import TransactionStore
from orchestrator.systemd import system_state
from orchestrator.transport.base import Transport

PLAN_STEP = "verify_plan"
#: ``systemctl is-system-running`` answers that mean the boot did not complete (rescue and emergency
#: targets report ``maintenance``). ``offline`` (no systemd as PID 1) is left to the probes.
BROKEN_BOOT_STATES = ("maintenance", "emergency")
#: Component whose probes tell whether the current configuration would boot (fstab ...).
BOOT_COMPONENT = "boot"


@dataclass(frozen=True)
class VerifyPlan:
    probes: tuple[str, ...]
    #: Hypervisor snapshot of a ``vm:`` target taken just before applying: the boot fallback.
    snapshot: str | None = None
    #: boot id of the target when the fix was applied (a later different one proves the reboot).
    boot_id: str | None = None
    #: The components the probes were named on (discovered ones included): verification after a
    #: boot re-runs exactly those probes, whatever a new discovery would find (a service that did not
    #: come back must fail its probe, not vanish from the watch).
    components: tuple[Component, ...] = ()
    #: The baseline facts those probes were planned with (unit states; path -> type, mode, uid, gid):
    #: without them the ``modes:`` probes of a target with a baseline do not exist after the boot.
    baseline_units: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    baseline_modes: Mapping[str, tuple[str, int, int, int]] = field(default_factory=dict)

    def as_detail(self) -> dict[str, Any]:
        return {"probes": list(self.probes), "snapshot": self.snapshot, "boot_id": self.boot_id,
                "components": [record.to_json(c) for c in self.components],
                "baseline_units": {u: list(s) for u, s in self.baseline_units.items()},
                "baseline_modes": {p: list(m) for p, m in self.baseline_modes.items()}}

    def watch(self, configured: WatchConfig) -> WatchConfig:
        """``configured`` with the plan's components and baseline facts, when the plan has them (older
        plans do not)."""
        if not self.components:
            return configured
        return replace(configured, components=self.components, resolved=True,
                       baseline_units=self.baseline_units, baseline_modes=self.baseline_modes)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    failures: tuple[str, ...] = ()
    system_state: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failures": list(self.failures), "system_state": self.system_state,
                "results": self.results}


def record_plan(store: TransactionStore, txn_id: str, plan: VerifyPlan) -> None:
    store.step(txn_id, PLAN_STEP, **plan.as_detail())


def load_plan(store: TransactionStore, txn_id: str) -> VerifyPlan:
    """Raises: StateError when the transaction has no plan (applied by an older vmrepair, or damaged)."""
    for step in reversed(store.steps(txn_id)):
        if step["step"] == PLAN_STEP:
            detail = step["detail"]
            probes = detail.get("probes")
            if not isinstance(probes, list) or not all(isinstance(p, str) for p in probes):
                break
            snapshot, boot = detail.get("snapshot"), detail.get("boot_id")
            components = record.from_json(detail.get("components", []),
                                          source=f"verification plan of transaction {txn_id}")
            return VerifyPlan(tuple(probes), snapshot if isinstance(snapshot, str) else None,
                              boot if isinstance(boot, str) else None, tuple(components),
                              _units(detail.get("baseline_units")), _modes(detail.get("baseline_modes")))
    raise StateError(f"transaction {txn_id} has no usable verification plan",
                     remedy=f"verify by hand, then `vmrepair fixes rollback {txn_id}` if needed")


def _units(raw: object) -> dict[str, tuple[str, str]]:
    """The plan's baseline unit states; anything malformed (a damaged or older plan) is left out."""
    if not isinstance(raw, dict):
        return {}
    return {str(u): (s[0], s[1]) for u, s in raw.items()
            if isinstance(s, list) and len(s) == 2 and all(isinstance(x, str) for x in s)}


def _modes(raw: object) -> dict[str, tuple[str, int, int, int]]:
    """The plan's baseline modes (path -> type, mode, uid, gid); malformed entries are left out."""
    if not isinstance(raw, dict):
        return {}
    return {str(p): (m[0], m[1], m[2], m[3]) for p, m in raw.items()
            if isinstance(m, list) and len(m) == 4 and isinstance(m[0], str)
            and all(type(x) is int for x in m[1:])}


def verify_after_boot(watch: WatchConfig, transport: Transport, plan: VerifyPlan,
                      agent: AgentApi | None = None, *, timeout: float = 120.0) -> Verdict:
    """Run the plan's probes on the target.

    Raises:
        TransportError: the target cannot be reached (the caller treats it as not verified).
    """
    probes = Detector(plan.watch(watch), transport, agent or RemoteAgent(transport, timeout=timeout))
    failures, results = [], []
    for name in plan.probes:
        try:
            result = probes.run_probe(name)
        except ConfigError:
            failures.append(f"probe {name} no longer exists in the watch config")
            continue
        results.append({"probe": name, "ok": result.ok, "unavailable": result.is_unavailable,
                        "summary": result.summary})
        if not result.ok and not result.is_unavailable:
            failures.append(f"{name}: {result.summary}")
    state = system_state(transport)
    if state in BROKEN_BOOT_STATES:
        failures.append(f"the system is in {state} state after the boot")
    return Verdict(not failures, tuple(failures), state, results)


def would_boot(watch: WatchConfig, transport: Transport, agent: AgentApi | None = None, *,
               timeout: float = 120.0) -> tuple[bool, list[str]]:
    """Whether the target's *current* configuration would boot: the boot component's probes pass.

    After a rollback this decides whether rebooting again (into the restored configuration) is safe.
    """
    probes = Detector(watch, transport, agent or RemoteAgent(transport, timeout=timeout))
    failed = [r.summary for r in probes.run_components([BOOT_COMPONENT]) if not r.ok and not r.is_unavailable]
    return not failed, failed
