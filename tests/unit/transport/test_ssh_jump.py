"""ProxyJump: a ParamikoTransport reached through another one's direct-tcpip channel (loopback server)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from orchestrator.app import App
from orchestrator.config.settings import Settings, TargetSettings
from orchestrator.errors import ConnectError, HostKeyError
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.ssh import ParamikoTransport

if TYPE_CHECKING:
    from conftest import KeyPair, SSHServer

MakeTransport = Callable[..., ParamikoTransport]


def test_commands_and_files_go_through_the_jump_host(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    hop = make_transport()
    target = make_transport(via=hop)
    assert target.run(["echo", "through"]).stdout == b"through\n"
    # One connection to the hop, one to the target made through the hop's channel to it.
    assert ssh_server.connections == 2
    assert ssh_server.state.forwarded == [("127.0.0.1", ssh_server.port)]
    # The hop's own connection only forwards: every command ran on the target's.
    assert ssh_server.exec_log == [["echo", "through"]]
    source = tmp_path / "up"
    source.write_bytes(b"payload")
    target.put_file(source, "/up.bin", mode=0o600)
    assert (ssh_server.sftp_root / "up.bin").read_bytes() == b"payload"


def test_closing_the_target_closes_the_hops(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    hop = make_transport()
    target = make_transport(via=hop)
    target.run(["true"])
    target.close()
    # Private access on purpose: "closed" means no cached connection is left on either transport.
    assert (hop._client, target._client) == (None, None)
    assert target.run(["true"]).succeeded  # and the whole chain reconnects on the next use
    assert ssh_server.connections == 4


def test_a_hop_whose_key_does_not_match_is_refused_before_anything_is_forwarded(
    make_transport: MakeTransport, ssh_server: SSHServer, make_keypair: Callable[[], KeyPair]
) -> None:
    hop = make_transport(host_key=make_keypair().public_line)
    target = make_transport(via=hop)
    with pytest.raises(HostKeyError) as info:
        target.run(["true"])
    assert info.value.remedy is not None
    assert "verify the new key out of band" in info.value.remedy
    assert ssh_server.state.forwarded == []


def test_a_hop_not_in_known_hosts_is_refused_with_the_usual_remedy(
    make_transport: MakeTransport, ssh_server: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.2]:{ssh_server.port} {ssh_server.host_key_line}\n")
    hop = make_transport(host_key=None, known_hosts=known_hosts)
    target = make_transport(via=hop)
    with pytest.raises(HostKeyError) as info:
        target.run(["true"])
    assert info.value.message.endswith(f"no key for [127.0.0.1]:{ssh_server.port} in {known_hosts}")
    assert info.value.remedy == f"add the host's verified public key to {known_hosts}"


def test_the_target_behind_the_hop_has_its_own_key_pinned(
    make_transport: MakeTransport, ssh_server: SSHServer, make_keypair: Callable[[], KeyPair]
) -> None:
    hop = make_transport()
    target = make_transport(via=hop, host_key=make_keypair().public_line)
    with pytest.raises(HostKeyError):
        target.run(["true"])
    assert ssh_server.state.forwarded == [("127.0.0.1", ssh_server.port)]
    assert ssh_server.exec_log == []


def test_a_jump_host_that_will_not_forward_is_named(
    make_transport: MakeTransport, ssh_server: SSHServer
) -> None:
    ssh_server.state.allow_forwarding = False
    hop = make_transport()
    target = make_transport(via=hop)
    with pytest.raises(ConnectError) as info:
        target.run(["true"])
    assert info.value.message.startswith(f"{hop.host}: jump host cannot reach 127.0.0.1:{ssh_server.port}:")
    assert info.value.remedy is not None
    assert "AllowTcpForwarding" in info.value.remedy


@pytest.mark.skipif(os.getuid() != 0, reason="open_target requires key files owned by root; run as root")
def test_an_ssh_config_alias_behind_a_jump_alias_runs_commands_end_to_end(
    make_settings: Callable[..., Settings], tmp_path: Path, ssh_server: SSHServer
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{ssh_server.port} {ssh_server.host_key_line}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host db\n  HostName 127.0.0.1\n  Port {ssh_server.port}\n  ProxyJump gw\n"
                      f"Host gw\n  HostName 127.0.0.1\n  Port {ssh_server.port}\n"
                      f"Host *\n  IdentityFile {ssh_server.client_key_file}\n")
    config.chmod(0o600)
    app = App(make_settings(targets=TargetSettings(known_hosts=known_hosts, ssh_config=config)))
    with open_target(app, parse_target("ssh://db")) as transport:
        assert transport.run(["echo", "hello"]).stdout == b"hello\n"
    assert ssh_server.state.forwarded == [("127.0.0.1", ssh_server.port)]
    assert ssh_server.connections == 2
