"""App wiring for remote hypervisors: a VM on one is reached through its sshd as a jump host."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.config.settings import Settings
from orchestrator.errors import ConfigError
from orchestrator.hypervisor.instance import InstanceRecord
from orchestrator.transport.ssh import ParamikoTransport

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def app(tmp_path: Path, make_settings: Callable[..., Settings]) -> App:
    key, known = tmp_path / "hv_key", tmp_path / "known_hosts"
    key.write_text("x")
    key.chmod(0o600)
    known.write_text("x")
    hv = HypervisorSettings.model_validate({
        "name": "hv1", "uri": "qemu+ssh://root@192.0.2.7:2222/system", "image_dir": "/srv/vmrepair",
        "ssh": {"host": "192.0.2.7", "port": 2222, "identity_file": str(key), "known_hosts": str(known)}})
    return App(dataclasses.replace(make_settings(), hypervisors=(hv,)))


def _record(hypervisor: str) -> InstanceRecord:
    return InstanceRecord(name="web1", template="debian-12", recipe_hash="0" * 64, ssh_port=40022,
                          host_key=HOST_KEY, created_at="2026-01-01T00:00:00+00:00", hypervisor=hypervisor)


def test_a_remote_vm_is_reached_through_the_hypervisor_sshd(app: App) -> None:
    guest = app.ssh_to_vm(_record("hv1"), 2.0)
    assert isinstance(guest, ParamikoTransport)
    assert (guest.address, guest.port) == ("127.0.0.1", 40022)
    assert guest.via is not None
    assert (guest.via.address, guest.via.port, guest.via.user) == ("192.0.2.7", 2222, "root")


def test_a_local_vm_is_reached_directly(app: App) -> None:
    guest = app.ssh_to_vm(_record(""), 2.0)
    assert isinstance(guest, ParamikoTransport)
    assert guest.via is None


def test_a_record_of_an_unconfigured_hypervisor_says_so(app: App) -> None:
    with pytest.raises(ConfigError) as info:
        app.ssh_to_vm(_record("gone"), 2.0)
    assert info.value.message == "no hypervisor named 'gone' in `hypervisors:`"


def test_without_hypervisors_placement_is_the_local_manager(
    make_settings: Callable[..., Settings],
) -> None:
    app = App(make_settings())
    assert app.place_vm(frozenset()) is app.vms
