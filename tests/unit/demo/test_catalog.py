"""The shipped fault catalog loads strictly and covers what issue 12 asks of it; bad catalogs are refused
with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.demo.catalog import FAMILIES, PRELUDE, failing_checks, find, inject, load_catalog
from orchestrator.errors import ConfigError
from orchestrator.transport.base import CommandResult

GOOD = """\
faults:
  - id: one-fault
    service: nginx
    template: debian-12
    family: revert
    fault_class: 23
    description: d
    inject: |
      true
    expect: {component: nginx, kinds: [config_invalid]}
    healthy:
      - [nginx, -t]
"""


def test_the_shipped_catalog_has_thirty_faults_over_six_services() -> None:
    faults = load_catalog()
    services = {f.service for f in faults} - {"host"}
    assert len(faults) >= 30
    assert len(services) >= 6
    assert {"debian-12", "debian-12-services"} <= {f.template for f in faults}
    # make test runs one fault of each repair family at least
    assert {f.family for f in faults if f.subset} >= {"revert", "config", "systemd", "state", "package"}
    assert {f.family for f in faults} <= set(FAMILIES)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_a_minimal_catalog_loads(tmp_path: Path) -> None:
    (fault,) = load_catalog(_write(tmp_path, GOOD))
    assert (fault.id, fault.baseline, fault.subset) == ("one-fault", True, False)
    assert fault.healthy == (("nginx", "-t"),)
    assert find([fault], "one-fault") is fault
    with pytest.raises(ConfigError, match="unknown fault 'other'") as raised:
        find([fault], "other")
    assert raised.value.remedy == "choose from one-fault"


@pytest.mark.parametrize(("change", "named"), [
    (("family: revert", "family: magic"), "family"),
    (("kinds: [config_invalid]", "kinds: [on_fire]"), "kinds"),
    (("fault_class: 23", "fault_class: 23\n    colour: red"), "colour"),
    (("- [nginx, -t]", "- []"), "healthy"),
    (("id: one-fault", "id: 'One Fault'"), "id"),
])
def test_a_bad_entry_is_refused_naming_the_key(tmp_path: Path, change: tuple[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_catalog(_write(tmp_path, GOOD.replace(*change)))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("faults:\n", 1)[1]
    with pytest.raises(ConfigError, match="appears twice"):
        load_catalog(_write(tmp_path, text))


class _Recorder:
    def __init__(self, statuses: dict[str, int]) -> None:
        self.statuses = statuses
        self.calls: list[list[str]] = []

    def check(self, argv: list[str], *, timeout: float | None = None) -> CommandResult:
        self.calls.append(argv)
        return CommandResult(tuple(argv), 0, b"", b"")

    def run(self, argv: list[str], *, timeout: float | None = None) -> CommandResult:
        self.calls.append(argv)
        return CommandResult(tuple(argv), self.statuses.get(argv[0], 0), b"", b"bad config\n")


def test_inject_passes_the_script_as_one_argv_element_and_checks_report_failures(tmp_path: Path) -> None:
    (fault,) = load_catalog(_write(tmp_path, GOOD))
    recorder = _Recorder({"nginx": 1})
    inject(recorder, fault)  # type: ignore[arg-type]
    assert recorder.calls[0][:4] == ["bash", "-euo", "pipefail", "-c"]
    assert recorder.calls[0][4] == PRELUDE + "true\n"
    assert failing_checks(recorder, fault) == ["nginx -t -> exit 1: bad config"]  # type: ignore[arg-type]
