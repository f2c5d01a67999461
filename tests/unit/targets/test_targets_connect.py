"""Opening ssh:// targets: ssh config applied, jump hosts chained, sudo for a non-root login."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.config.settings import Settings, TargetSettings
from orchestrator.errors import ConfigError, KeyFileError
from orchestrator.targets.spec import open_target, parse_target
from orchestrator.transport.ssh import ParamikoTransport
from orchestrator.transport.sudo import SudoTransport

KNOWN_HOSTS = Path("/etc/vmrepair/known_hosts")


def _app(make_settings: Callable[..., Settings], tmp_path: Path, config: str, **targets: object) -> App:
    path = tmp_path / "ssh_config"
    path.write_text(config)
    path.chmod(0o600)
    options: dict[str, object] = {"known_hosts": KNOWN_HOSTS, "ssh_config": path, **targets}
    return App(make_settings(targets=TargetSettings.model_validate(options)))


def test_an_alias_is_resolved_and_a_root_login_is_used_directly(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = _app(make_settings, tmp_path, "Host db\n  HostName 10.0.0.5\n  Port 2222\n")
    transport = open_target(app, parse_target("ssh://db"))
    assert isinstance(transport, ParamikoTransport)
    assert (transport.address, transport.port, transport.user, transport.via) == ("10.0.0.5", 2222, "root",
                                                                                  None)
    assert transport.host == "root@10.0.0.5:2222"


def test_a_non_root_login_is_wrapped_in_sudo(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    app = _app(make_settings, tmp_path, "Host db\n  HostName 10.0.0.5\n  User deploy\n")
    transport = open_target(app, parse_target("ssh://db"))
    assert isinstance(transport, SudoTransport)
    assert transport.login_user == "deploy"
    assert isinstance(transport.inner, ParamikoTransport)
    assert transport.inner.user == "deploy"
    # The URL's user wins over the file's: root logs in directly.
    assert isinstance(open_target(app, parse_target("ssh://root@db")), ParamikoTransport)


def test_jump_hosts_are_chained_in_order(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    app = _app(make_settings, tmp_path, "Host db\n  ProxyJump gw1,ops@gw2:2200\n",
               ssh_key=Path("/etc/vmrepair/id"))
    transport = open_target(app, parse_target("ssh://db"))
    assert isinstance(transport, ParamikoTransport)
    second = transport.via
    assert second is not None and (second.address, second.port, second.user) == ("gw2", 2200, "ops")
    first = second.via
    assert first is not None and (first.address, first.port, first.user, first.via) == ("gw1", 22, "root",
                                                                                       None)


def test_a_refused_option_stops_the_target_from_opening(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = _app(make_settings, tmp_path, "Host db\n  ProxyCommand nc %h %p\n")
    with pytest.raises(ConfigError, match="`ProxyCommand` runs a command"):
        open_target(app, parse_target("ssh://db"))


def test_a_named_ssh_config_that_is_missing_is_an_error(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(targets=TargetSettings(known_hosts=KNOWN_HOSTS, ssh_config=tmp_path / "none"))
    with pytest.raises(ConfigError, match="cannot read it"):
        open_target(App(settings), parse_target("ssh://db"))


def test_an_identity_file_from_ssh_config_passes_the_key_file_checks(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key = tmp_path / "id_db"
    key.write_text("not checked yet")
    key.chmod(0o644)
    app = _app(make_settings, tmp_path, f"Host db\n  IdentityFile {key}\n")
    transport = open_target(app, parse_target("ssh://db"))
    with pytest.raises(KeyFileError, match=rf"SSH key file {key} is unsafe: mode 0644"):
        transport.run(["true"])  # the key is loaded before any connection is attempted
