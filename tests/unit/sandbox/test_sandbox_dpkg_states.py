"""The VM's dpkg gets the target's unfinished state for the components' packages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator.agent.api import Manifest
from orchestrator.capture.snapshot import Capture
from orchestrator.facts.model import OsRelease, Package, TargetFacts
from orchestrator.model import Component
from orchestrator.sandbox import dpkg_states
from orchestrator.session.store import new_session
from tests.unit.fake_agent import FakeAgent

STATUS = (
    "Package: nginx-common\nStatus: install ok installed\nPriority: optional\nArchitecture: all\n"
    "Version: 1.22.1-9\nDescription: small, powerful\n Package: evil\n Status: continuation\n\n"
    "Package: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n\n"
    "Package: cron\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0pl1-162\n"
)
NGINX = Component("nginx", units=("nginx.service",), packages=("nginx", "nginx-common", "cron"))


def _capture(tmp_path: Path, *packages: Package) -> Capture:
    facts = TargetFacts(OsRelease("debian", "12"), "amd64", packages=packages)
    return replace(Capture(tmp_path / "files.tar", (), Manifest(()), ()), facts=facts)  # type: ignore[arg-type]


def test_a_half_configured_package_is_half_configured_in_the_vm(tmp_path: Path) -> None:
    agent = FakeAgent(files={dpkg_states.STATUS_FILE: STATUS.encode()})
    capture = _capture(tmp_path, Package("nginx-common", "1.22.1-9", "all", "iF"),
                       Package("nginx", "1.22.1-9", "amd64", "ii"),
                       Package("cron", "3.0pl1-999", "amd64", "iU"))   # another version in the VM
    done = dpkg_states.mirror_states(agent, capture, [NGINX], new_session(tmp_path / "s", "vm:p"))
    assert done == ["nginx-common:all 1.22.1-9: half-configured, as on the target"]
    text = agent.files[dpkg_states.STATUS_FILE].data.decode()
    wanted = "Status: install ok half-configured\nPriority"
    assert text == STATUS.replace("Status: install ok installed\nPriority", wanted, 1)
    assert " Status: continuation" in text   # a continuation line is never taken for a field


def test_nothing_unfinished_writes_nothing(tmp_path: Path) -> None:
    agent = FakeAgent(files={dpkg_states.STATUS_FILE: STATUS.encode()})
    capture = _capture(tmp_path, Package("nginx", "1.22.1-9", "amd64", "ii"),
                       Package("other", "1", "amd64", "iF"))    # not a package of the component
    assert dpkg_states.mirror_states(agent, capture, [NGINX], new_session(tmp_path / "s", "vm:p")) == []
    assert [c for c in agent.calls if c[0] == "write_file"] == []
