"""Counts imported from a trusted bundle steer this host's ranking for the same fault, at the level
the signatures match, and stop counting when the key is revoked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from orchestrator.fleet.imports import import_bundle
from orchestrator.fleet.keys import SigningKey
from orchestrator.fleet.posterior import explain
from orchestrator.fleet.signature import FaultSignature
from orchestrator.fleet.trust import TrustStore
from orchestrator.state.db import StateDb
from orchestrator.state.outcomes import OutcomeStore
from tests.unit.fleet.conftest import NOW, add_outcome, trust

#: The same fault on the exporting host and here; another release of it differs only at the fine level.
HERE = FaultSignature("nginx", "config_invalid", "config_syntax", "/etc/<...>/<file>", "debian-12")
OTHER_RELEASE = FaultSignature("nginx", "config_invalid", "config_syntax", "/etc/<...>/<file>", "debian-13")


def _ids(signature: FaultSignature) -> tuple[str, str, str]:
    return signature.fine, signature.medium, signature.coarse


def test_a_strategy_that_won_on_another_host_ranks_first_here(
        exporter_db: StateDb, importer_db: StateDb, key: SigningKey,
        make_bundle: Callable[..., bytes]) -> None:
    # Host A: the first strategy failed validation, the second fixed the fault on the target too.
    add_outcome(exporter_db, "nginx-restart", succeeded=False, signature=_ids(HERE))
    add_outcome(exporter_db, "nginx-restore-config", succeeded=True, signature=_ids(HERE))
    add_outcome(exporter_db, "nginx-restore-config", succeeded=True, stage="target", signature=_ids(HERE))
    trust(importer_db, key)
    import_bundle(importer_db, make_bundle(), now=NOW + dt.timedelta(hours=1))

    # Host B has no outcome of its own: the imported ones are its whole record of this fault.
    store = OutcomeStore(importer_db)
    history = store.load_for(HERE)
    assert history["nginx-restore-config"].levels["fine"] == (2, 2)
    # A's failure travels too: it is what demotes the strategy here.
    assert history["nginx-restart"].levels["fine"] == (0, 1)
    restore = explain(history, "nginx-restore-config", 0.7)
    restart = explain(history, "nginx-restart", 0.7)
    assert (restore.level, restart.level) == ("fine", "fine")
    assert restore.mean > explain({}, "nginx-restore-config", 0.7).mean > restart.mean

    # Another OS release of the same fault: only the medium level matches, and it is used.
    medium = store.load_for(OTHER_RELEASE)
    assert "fine" not in medium["nginx-restore-config"].levels
    assert explain(medium, "nginx-restore-config", 0.7).level == "medium"

    TrustStore(importer_db).revoke(key.key_id)
    assert store.load_for(HERE) == {}
