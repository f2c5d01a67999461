"""Concordance per signature and strategy: validated in a VM, verified on the target, after its reboot."""

from __future__ import annotations

from pathlib import Path

from orchestrator.fleet.signature import FaultSignature
from orchestrator.fleet.stats import UNSIGNED_LABEL, concordance, shown
from orchestrator.state import open_state
from orchestrator.state.outcomes import STAGE_REBOOT, STAGE_TARGET, STAGE_VM, OutcomeStore, StageTally

NGINX = FaultSignature("nginx", "config_invalid", "config_invalid", "<pattern>", "debian-12")
FSTAB = FaultSignature("host", "boot_config", "device_missing", "<pattern>", "debian-12")


def test_concordance_per_signature_and_strategy(tmp_path: Path) -> None:
    store = OutcomeStore(open_state(tmp_path / "s.db"))
    for ok in (True, True, True, False):
        store.record("nginx-restore-offender", succeeded=ok, signature=NGINX)
    store.record("nginx-restore-offender", succeeded=True, stage=STAGE_TARGET, signature=NGINX)
    store.record("nginx-restore-offender", succeeded=False, stage=STAGE_TARGET, signature=NGINX)
    store.record("nginx-restart", succeeded=False, signature=NGINX)
    store.record("fstab-add-nofail", succeeded=True, signature=FSTAB)
    store.record("fstab-add-nofail", succeeded=True, stage=STAGE_REBOOT, signature=FSTAB)
    store.record("old-strategy", succeeded=True)   # recorded before signatures

    stats = concordance(store.stage_tallies())
    assert [(s.label, s.signature, s.tries) for s in stats] == [
        ("nginx / config_invalid / config_invalid", NGINX.fine, 7),
        ("host / boot_config / device_missing", FSTAB.fine, 2),
        (UNSIGNED_LABEL, "", 1)]
    nginx = stats[0]
    assert [(s.strategy, dict(s.stages)) for s in nginx.strategies] == [
        ("nginx-restore-offender", {STAGE_VM: (3, 4), STAGE_TARGET: (1, 2), STAGE_REBOOT: (0, 0)}),
        ("nginx-restart", {STAGE_VM: (0, 1), STAGE_TARGET: (0, 0), STAGE_REBOOT: (0, 0)})]
    assert nginx.parts["os_release"] == "debian-12"
    assert nginx.as_dict()["strategies"][0] == {  # type: ignore[index]
        "strategy": "nginx-restore-offender", "vm": {"succeeded": 3, "tries": 4},
        "target": {"succeeded": 1, "tries": 2}, "reboot": {"succeeded": 0, "tries": 0}}


def test_a_stage_of_another_release_is_kept_not_dropped() -> None:
    (only,) = concordance([StageTally(NGINX.fine, {}, "fix", "canary", 1, 1)])
    assert dict(only.strategies[0].stages) == {STAGE_VM: (0, 0), STAGE_TARGET: (0, 0), STAGE_REBOOT: (0, 0),
                                               "canary": (1, 1)}
    assert only.label == "? / ? / ?"


def test_shown() -> None:
    assert (shown((3, 4)), shown((0, 0))) == ("3/4", "—")
    assert concordance([]) == []
