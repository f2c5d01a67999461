"""Host layers on real VMs (issue 10): a patient built from a *second* template (apache2 on 8088 and
mariadb-server, which the default troubleshooting template lacks) is broken in a file, a directory and a
unit state of those services. Each run must move the troubleshooting VM onto a layer carrying the
patient's own packages (the first run builds it, from the patient's apt cache and the mirror; later runs
reuse it) and reproduce the fault there: never `not_reproduced`, never a reproduction the VM's missing
packages could explain. A fault no playbook repairs yet may end `not_repaired`, the patient untouched.

The layer for this package set is removed before the module (so `make test` measures a real build);
set VMREPAIR_TEST_REUSE_LAYERS=1 to keep a cached one while iterating.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.app import App
from orchestrator.config.settings import LayerSettings
from orchestrator.layers.store import LayerStore
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from tests.integration.helpers import booted_patient, detect, fresh_patient
from tests.integration.services import (
    APACHE_PORT,
    FAULTS,
    TEMPLATE,
    ServiceFault,
    break_apache_config_file,
    services_app,
)

pytestmark = pytest.mark.integration
HEALTHY = "healthy"
#: A file fault (the run builds the layer and reproduces on it), a directory fault and a unit-state
#: fault (those runs start on the reused layer). mariadb.conf.d, a second directory fault, runs nightly.
IN_MAKE_TEST = ("apache2-config-file", "apache2-mods-enabled", "mariadb-masked")
SEEN: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def svc(app: App) -> Iterator[App]:
    with services_app(app) as services:
        yield services


@pytest.fixture(scope="module")
def patient(svc: App) -> Iterator[str]:
    if not os.environ.get("VMREPAIR_TEST_REUSE_LAYERS"):
        store = LayerStore(svc.settings.image_store)
        for layer in store.list():
            if any(spec.startswith("mariadb-server:") for spec in layer.manifest.packages):
                store.remove(layer.directory)
    yield from booted_patient(svc, "svc", HEALTHY, TEMPLATE)


@pytest.fixture
def fresh(svc: App, patient: str) -> Iterator[str]:
    yield from fresh_patient(svc, patient, HEALTHY)


def test_extra_services_are_discovered_without_configuration(app: App, patient: str) -> None:
    """Discovery (issue 11) on the services template: apache2 and mariadb are found although
    ``app.settings`` does not mention them. Here rather than in test_discovery.py so that the
    services template boots once for both (the patient is fresh: nothing has run on it yet)."""
    with app.vms.transport(patient) as ssh:
        resolution, issues = detect(app, patient, ssh)
    comps = {c.name: c for c in resolution.watch.components}
    assert issues == [], json.dumps(issues, indent=1)
    apache = comps["apache2"]
    assert apache.origin == "discovered" and APACHE_PORT in apache.ports and apache.vital
    assert "/etc/apache2" in apache.config_paths and "apache2" in apache.packages
    mariadb = comps["mariadb"]
    assert mariadb.origin == "discovered" and mariadb.units == ("mariadb.service",)
    assert "mariadb-server" in mariadb.packages or "mariadb-server-core" in mariadb.packages


def _faults() -> list[Any]:
    return [pytest.param(f, id=f.name, marks=() if f.name in IN_MAKE_TEST else pytest.mark.nightly)
            for f in FAULTS]


@pytest.mark.parametrize("fault", _faults())
def test_a_fault_of_a_service_the_template_lacks_reproduces_on_a_host_layer(
        svc: App, fresh: str, fault: ServiceFault) -> None:
    with svc.vms.transport(fresh) as ssh:
        fault.inject(ssh)
    outcome = run_repair(svc, f"vm:{fresh}", RunOptions(assume_yes=True, stable_period_s=2.0))
    data = outcome.as_dict()
    dump = json.dumps(data, indent=1, default=str)
    assert outcome.status is not SessionStatus.NOT_REPRODUCED, dump
    assert outcome.status is not SessionStatus.ERROR, dump
    session = Path(str(data["session_dir"]))
    reproduced = json.loads((session / f"reproduce-{fault.component}.json").read_text())
    layer = reproduced["layer"]
    # Reproduced on the layer, for the target's reason: nothing the target has is missing in the VM.
    assert layer["used"] and not layer["fallback"], layer
    assert reproduced["ok"] is False and reproduced["environment"]["missing_in_vm"] == [], reproduced
    added = {spec.split(":", 1)[0] for spec in layer["added"]}
    assert {"apache2", "apache2-bin", "mariadb-server", "mariadb-server-core"} <= added
    # The patient keeps apache2's .debs in its apt cache (its template says so), not mariadb's.
    assert layer["sources"].get("target-cache", 0) >= 4 and layer["sources"].get("mirror", 0) >= 4, layer
    if SEEN:
        assert layer["used"] == SEEN[0]["used"] and layer["built_now"] is False, "the layer was not reused"
        # The last run here used that layer: this run's VM started on it, no move from the template.
        events = [json.loads(line) for line in (session / "evidence.jsonl").read_text().splitlines()]
        assert any(e.get("event") == "layer_guessed" for e in events), "the VM did not start on the layer"
        ready = [e.get("already_running") for e in events if e.get("event") == "layer_ready"]
        assert ready and all(ready), ready
    SEEN.append(layer)
    report = (session / "report.md").read_text()
    assert "Host layer:" in report and layer["used"][:16] in report
    if outcome.status is not SessionStatus.REPAIRED:
        assert outcome.status is SessionStatus.NOT_REPAIRED, dump
        with svc.vms.transport(fresh) as ssh:   # nothing applied: the fault is still there
            state = ssh.run(["systemctl", "is-active", "--", f"{fault.component}.service"]).stdout_text
        assert state.strip() != "active"


def test_without_a_layer_the_run_stays_on_the_template_and_refuses_to_call_it_reproduced(
        svc: App, fresh: str) -> None:
    """Template fallback on real VMs: a layer that cannot be had (here: more packages than allowed)
    leaves the VM on the template, says why, and the missing apache2 is `environment differs`."""
    capped = App(dataclasses.replace(svc.settings, layers=LayerSettings(max_packages=3)))
    try:
        with capped.vms.transport(fresh) as ssh:
            break_apache_config_file(ssh)
        outcome = run_repair(capped, f"vm:{fresh}", RunOptions(assume_yes=True, stable_period_s=2.0))
    finally:
        capped.close()
    data = outcome.as_dict()
    dump = json.dumps(data, indent=1, default=str)
    assert outcome.status is SessionStatus.NOT_REPRODUCED, dump
    assert "environment differs" in dump and "nothing applied" in dump
    reproduced = json.loads((Path(str(data["session_dir"])) / "reproduce-apache2.json").read_text())
    assert reproduced["layer"]["used"] == ""
    assert "more than layers.max_packages (3)" in reproduced["layer"]["fallback"]
    assert any("apache2" in m for m in reproduced["environment"]["missing_in_vm"])


def test_the_layer_is_listed_and_a_prune_keeps_a_current_one(svc: App, patient: str) -> None:
    if not SEEN:
        pytest.skip("no layer was used by the runs above (they failed first)")
    store = LayerStore(svc.settings.image_store)
    layer = store.get(SEEN[0]["used"])
    assert layer is not None and layer.manifest.template == svc.settings.default_template
    assert layer.manifest.build_seconds > 0 and layer.disk_bytes > 0
    listed = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--json", "image", "layers",
                             "--prune"], capture_output=True, text=True, check=True, timeout=120)
    answer = json.loads(listed.stdout)
    assert layer.key not in answer["removed"]
    assert any(row["key"] == layer.key and row["current"] for row in answer["layers"])
