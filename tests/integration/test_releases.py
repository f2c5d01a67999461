"""A target on another Debian release (issue 10): the troubleshooting VM runs the default recipe built
for the target's release, never bookworm packages pretending to be bullseye. Nightly: the first run
builds the bullseye template (about 3 minutes), which the patient is booted from as well."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.demo.faults import inject
from orchestrator.imaging.builder import ImageBuilder
from orchestrator.imaging.releases import release_template
from orchestrator.imaging.template import load_template
from orchestrator.model import SessionStatus
from orchestrator.pipeline.run import RunOptions, run_repair
from tests.integration.helpers import booted_patient, fresh_patient

pytestmark = [pytest.mark.integration, pytest.mark.nightly]
HEALTHY = "healthy"
RELEASE = "bullseye"


@pytest.fixture(scope="module")
def bullseye(app: App) -> Iterator[str]:
    template = release_template(load_template(app.settings.templates_dir, app.settings.default_template),
                                RELEASE)
    ImageBuilder(app.settings, app.local).build(template)   # cached by recipe hash
    yield from booted_patient(app, "old", HEALTHY, template.name)


@pytest.fixture
def fresh(app: App, bullseye: str) -> Iterator[str]:
    yield from fresh_patient(app, bullseye, HEALTHY)


def test_a_bullseye_target_is_repaired_in_a_bullseye_vm(app: App, fresh: str) -> None:
    with app.vms.transport(fresh) as ssh:
        inject(ssh, "nginx-config", "directive")
    outcome = run_repair(app, f"vm:{fresh}", RunOptions(assume_yes=True, stable_period_s=2.0))
    data = outcome.as_dict()
    dump = json.dumps(data, indent=1, default=str)
    session = Path(str(data["session_dir"]))
    capture = json.loads((session / "capture.json").read_text())
    assert capture["facts"]["os"]["codename"] == RELEASE
    reproduced = json.loads((session / "reproduce-nginx.json").read_text())
    layer = reproduced["layer"]
    assert layer["template"] == f"{app.settings.default_template}-{RELEASE}", layer
    assert not layer["fallback"] and reproduced["environment"]["missing_in_vm"] == [], reproduced
    assert outcome.status is SessionStatus.REPAIRED, dump
