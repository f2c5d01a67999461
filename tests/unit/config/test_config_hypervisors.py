"""The `hypervisors:` list: strict URIs, private key files, pinned host keys, unique names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.config.settings import ConfigFile


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "hv_key"
    path.write_text("not parsed here\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    path.chmod(0o644)
    return path


def _entry(key: Path, known_hosts: Path | None, **overrides: Any) -> dict[str, Any]:
    ssh: dict[str, Any] = {"host": "127.0.0.1", "port": 2222, "identity_file": str(key)}
    if known_hosts is not None:
        ssh["known_hosts"] = str(known_hosts)
    entry: dict[str, Any] = {"name": "hv1", "uri": "qemu+ssh://root@127.0.0.1:2222/system",
                             "ssh": ssh, "image_dir": "/var/lib/vmrepair-remote", "max_vms": 2}
    entry.update(overrides)
    return entry


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ConfigFile.model_validate(data)
    return str(info.value)


def test_empty_list_is_the_default() -> None:
    assert ConfigFile().hypervisors == []


def test_a_remote_hypervisor_loads(key: Path, known_hosts: Path) -> None:
    cfg = ConfigFile.model_validate({"hypervisors": [_entry(key, known_hosts)]})
    (hv,) = cfg.hypervisors
    assert (hv.name, hv.is_remote, hv.max_vms, hv.image_dir) == (
        "hv1", True, 2, Path("/var/lib/vmrepair-remote"))
    assert hv.ssh is not None
    assert (hv.ssh.user, hv.ssh.port, hv.ssh.known_hosts) == ("root", 2222, known_hosts)


def test_the_local_uri_needs_no_ssh() -> None:
    hv = HypervisorSettings.model_validate(
        {"name": "here", "uri": "qemu:///system", "image_dir": "/var/lib/x"})
    assert not hv.is_remote


@pytest.mark.parametrize("uri", [
    "qemu+ssh://root@host/system?command=/bin/sh",  # libvirt would run it
    "qemu+ssh://root@host/system?no_verify=1",
    "qemu+ssh://root@host/session",
    "qemu+tcp://root@host/system",
    "qemu+ssh://root@-oProxyCommand=x/system",
    "qemu+ssh://root@host;id/system",
    "qemu+ssh://root@host:99999/system",
    "qemu:///session",
])
def test_bad_uris_are_refused(key: Path, known_hosts: Path, uri: str) -> None:
    message = _error({"hypervisors": [_entry(key, known_hosts, uri=uri)]})
    assert "hypervisors.0.uri" in message
    assert "qemu+ssh://user@host[:port]/system" in message or "out of range" in message


def test_a_key_readable_by_others_is_refused(key: Path, known_hosts: Path) -> None:
    key.chmod(0o644)
    message = _error({"hypervisors": [_entry(key, known_hosts)]})
    assert "hypervisors.0.ssh.identity_file" in message
    assert "unsafe: mode 0644" in message


def test_a_missing_key_is_refused(tmp_path: Path, known_hosts: Path) -> None:
    message = _error({"hypervisors": [_entry(tmp_path / "nope", known_hosts)]})
    assert "cannot be read" in message


def test_known_hosts_is_required(key: Path) -> None:
    message = _error({"hypervisors": [_entry(key, None)]})
    assert "hypervisors.0.ssh.known_hosts" in message
    assert "Field required" in message


def test_a_world_writable_known_hosts_is_refused(key: Path, known_hosts: Path) -> None:
    known_hosts.chmod(0o666)
    assert "not writable by group or others" in _error({"hypervisors": [_entry(key, known_hosts)]})


def test_a_remote_uri_without_ssh_is_refused() -> None:
    message = _error({"hypervisors": [{"name": "hv1", "uri": "qemu+ssh://root@h/system",
                                       "image_dir": "/srv/x"}]})
    assert "needs `ssh:`" in message


def test_names_are_unique(key: Path, known_hosts: Path) -> None:
    entry = _entry(key, known_hosts)
    assert "hv1 repeated" in _error({"hypervisors": [entry, entry]})


def test_unknown_keys_are_refused(key: Path, known_hosts: Path) -> None:
    assert "Extra inputs are not permitted" in _error(
        {"hypervisors": [_entry(key, known_hosts, weight=3)]})
