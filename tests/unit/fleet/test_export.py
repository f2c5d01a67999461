"""Exporting: outcome rows counted per signature and strategy (successes and failures), no host names."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from collections.abc import Callable

import pytest

from orchestrator.errors import FleetError
from orchestrator.fleet.bundle import canonical, parse_payload
from orchestrator.fleet.export import (
    OutcomeRow,
    StrategyInfo,
    build_payload,
    catalog_describer,
    export_bundle,
    rows_for_export,
)
from orchestrator.fleet.keys import SigningKey
from orchestrator.playbooks.model import Playbook, Strategy
from orchestrator.state.db import StateDb
from tests.unit.fleet.conftest import COARSE, FINE, MEDIUM, NOW, add_outcome, describe

TARGET = "ssh://root@web1-prod.example.org:22"


def _payload(data: bytes) -> dict[str, object]:
    body = base64.b64decode(json.loads(data)["payload"])
    return json.loads(body)  # type: ignore[no-any-return]


def test_rows_for_export_reads_signed_rows_since_a_moment(exporter_db: StateDb) -> None:
    add_outcome(exporter_db, "nginx-a", succeeded=True, at="2026-01-01T00:00:00Z")
    add_outcome(exporter_db, "nginx-b", succeeded=False, at="2026-02-01T00:00:00.123+00:00")
    add_outcome(exporter_db, "nginx-c", succeeded=True, signature=("", "", ""))  # before signatures
    since = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    assert rows_for_export(exporter_db, since) == [
        OutcomeRow("nginx-b", False, "vm", "2026-02-01T00:00:00.123+00:00", FINE, MEDIUM, COARSE)]
    assert [r.strategy for r in rows_for_export(exporter_db, None)] == ["nginx-a", "nginx-b"]


def test_successes_and_failures_travel(exporter_db: StateDb, make_bundle: Callable[..., bytes]) -> None:
    """A failure is what demotes a strategy on the importing host: a bundle carrying only winners
    would leave a host trying the same losers first (seen on a real VM before this was fixed)."""
    add_outcome(exporter_db, "nginx-works", succeeded=False)
    add_outcome(exporter_db, "nginx-works", succeeded=True, stage="reboot")
    add_outcome(exporter_db, "nginx-never", succeeded=False)
    add_outcome(exporter_db, "nginx-never", succeeded=False, stage="target")
    payload = _payload(make_bundle())
    never, item = payload["strategies"]  # type: ignore[misc]
    assert (never["strategy"], never["stages"]) == ("nginx-never", {"vm": [0, 1], "target": [0, 1],
                                                                    "reboot": [0, 0]})
    assert item["strategy"] == "nginx-works"
    assert item["playbook"] == "nginx"
    assert item["stages"] == {"vm": [0, 1], "target": [0, 0], "reboot": [1, 1]}
    assert item["signature"] == {"fine": FINE, "medium": MEDIUM, "coarse": COARSE, "medium_parts": []}
    assert "steps" not in item  # a shipped strategy travels by name only


def test_a_generated_strategy_carries_its_steps(exporter_db: StateDb, make_bundle: Callable[..., bytes]
                                                ) -> None:
    add_outcome(exporter_db, "gen-unmask-nginx.service", succeeded=True)
    [item] = _payload(make_bundle())["strategies"]  # type: ignore[misc]
    assert item["playbook"] == "generated:systemd"
    assert item["steps"] == [{"systemctl": {"action": "unmask", "unit": "x.service"}}]


def test_payload_is_canonical_and_has_provenance(exporter_db: StateDb, key: SigningKey,
                                                 make_bundle: Callable[..., bytes]) -> None:
    add_outcome(exporter_db, "nginx-works", succeeded=True, at="2026-02-10T08:00:00Z")
    data = make_bundle(expires_days=7)
    body = base64.b64decode(json.loads(data)["payload"])
    assert body == canonical(parse_payload(body))  # sorted keys, no spaces: one form per bundle
    assert b" " not in body.replace(b"debian 12 (bookworm)", b"")
    payload = _payload(data)
    assert payload["key_id"] == key.key_id
    assert payload["created_at"] == "2026-03-01T12:00:00Z"
    assert payload["expires_at"] == "2026-03-08T12:00:00Z"
    assert payload["window"] == {"from": "2026-02-10T08:00:00Z", "to": "2026-03-01T12:00:00Z"}
    assert payload["os_release"] == "debian 12 (bookworm)"
    assert json.loads(data)["key_id"] == key.key_id


def test_no_host_name_appears_in_a_bundle(exporter_db: StateDb, make_bundle: Callable[..., bytes]) -> None:
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True, stage="target", target=TARGET)
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True, target="vm:scratch-web1")
    data = make_bundle()
    names = [b"web1-prod", b"example.org", b"scratch-web1"]
    if len(socket.gethostname()) >= 3:  # a host named "vm" shares its name with a stage: not checkable
        names.append(socket.gethostname().encode())
    for name in names:
        assert name not in data
        assert name not in base64.b64decode(json.loads(data)["payload"])
    assert len(_payload(data)["strategies"]) == 1  # type: ignore[arg-type]


def test_a_strategy_naming_a_host_is_left_out(exporter_db: StateDb, key: SigningKey) -> None:
    add_outcome(exporter_db, "nginx-restore-baseline", succeeded=True, target=TARGET)
    add_outcome(exporter_db, "gen-revert-file-etc-web1-prod.conf", succeeded=True, target=TARGET)
    result = export_bundle(exporter_db, key, since=None, expires=dt.timedelta(days=1), os_release="debian 12",
                           describe=describe, now=NOW)
    assert [s.strategy for s in result.payload.strategies] == ["nginx-restore-baseline"]
    assert result.left_out == ("gen-revert-file-etc-web1-prod.conf: its name, steps or signature mention a "
                               "host name",)
    assert b"web1-prod" not in base64.b64decode(json.loads(result.data)["payload"])


def test_a_strategy_this_host_does_not_know_is_left_out(exporter_db: StateDb, key: SigningKey) -> None:
    add_outcome(exporter_db, "gone-strategy", succeeded=True)
    result = export_bundle(exporter_db, key, since=None, expires=dt.timedelta(days=1), os_release="debian 12",
                           describe=describe, now=NOW)
    assert result.payload.strategies == ()
    assert result.left_out[0].startswith("gone-strategy: no playbook of this host defines it")


def test_a_host_name_left_in_the_payload_stops_the_export(key: SigningKey) -> None:
    rows = [OutcomeRow("nginx-a", True, "vm", "2026-02-01T00:00:00Z", FINE, MEDIUM, COARSE)]
    # Strategies that name a host are left out before; the last check sees the whole payload (here a
    # "host name" equal to the key id, the one field outside the strategies a test can aim at).
    with pytest.raises(FleetError, match=f"would name host\\(s\\) {key.key_id}"):
        build_payload(rows, key=key, version=1, now=NOW, since=None, expires=dt.timedelta(days=1),
                      os_release="debian 12", describe=lambda name: StrategyInfo("nginx"),
                      forbidden=[key.key_id])
    # os_release is this host's own, never a target's: a host named "debian" does not stop an export.
    payload, _ = build_payload(rows, key=key, version=1, now=NOW, since=None, expires=dt.timedelta(days=1),
                               os_release="debian 12", describe=lambda name: StrategyInfo("nginx"),
                               forbidden=["debian"])
    assert payload.os_release == "debian 12"


def test_each_export_has_a_newer_version(exporter_db: StateDb, make_bundle: Callable[..., bytes]) -> None:
    versions = [_payload(make_bundle())["version"] for _ in range(3)]
    assert versions == sorted(set(versions))  # type: ignore[type-var]


def test_catalog_describer_names_shipped_playbooks_and_generated_steps() -> None:
    strategy = Strategy(name="nginx-restore-baseline", description="", for_causes=("*",), effectiveness=0.5,
                        reboot_required=False, steps=(), playbook="nginx")
    playbook = Playbook(name="nginx", description="", components=("nginx",), kinds=frozenset(),
                        diagnostics=(), rules=(), strategies=(strategy,), source="nginx.yaml")
    generated = StrategyInfo("generated:state", ({"mkdir": {"path": "/var/log/nginx"}},))
    lookup = catalog_describer([playbook], {"gen-mkdir-var-log-nginx": generated})
    assert lookup("nginx-restore-baseline") == StrategyInfo("nginx")
    assert lookup("gen-mkdir-var-log-nginx") == generated
    assert lookup("unknown") is None
    # Other generated strategies: counts without steps (the importing host derives the same one).
    assert lookup("gen-unmask-nginx.service") == StrategyInfo("generated")


def test_a_bundle_names_what_each_signature_is_about(exporter_db: StateDb,
                                                      make_bundle: Callable[..., bytes]) -> None:
    """The medium-level parts recorded with the outcomes travel, readable; the fine pattern does not."""
    add_outcome(exporter_db, "nginx-works", succeeded=True)
    parts = {"component_kind": "nginx", "issue_kind": "config_invalid", "cause": "config_syntax",
             "evidence_pattern": "/etc/<...>/<file>.conf: bad line <n>", "os_release": "debian-12"}
    with exporter_db.write() as tx:
        tx.execute("UPDATE outcomes SET signature_parts = ?", (json.dumps(parts),))
    (item,) = _payload(make_bundle())["strategies"]  # type: ignore[misc]
    assert item["signature"]["medium_parts"] == ["nginx", "config_invalid", "config_syntax"]
