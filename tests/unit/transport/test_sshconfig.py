"""ssh config resolution: Host patterns, what the URL overrides, ProxyJump chains, refused options."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.errors import ConfigError
from orchestrator.transport import sshconfig
from orchestrator.transport.sshconfig import (
    SshEndpoint,
    default_ssh_config,
    load_ssh_config,
    resolve_endpoint,
)

DEFAULT_KEY = Path("/var/lib/vmrepair/keys/id_ed25519")
REMEDY = "remove it for this host, or point `targets.ssh_config` at a file without it"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def _resolve(tmp_path: Path, text: str, name: str, **url: object) -> SshEndpoint:
    config = load_ssh_config(_config(tmp_path, text))
    return resolve_endpoint(name, config=config, default_key=DEFAULT_KEY, **url)  # type: ignore[arg-type]


HOSTS = """\
    Host db-prod
        HostName 10.0.0.5
        User deploy
        Port 2222
        IdentityFile /etc/vmrepair/keys/db
        IdentityFile /etc/vmrepair/keys/second

    Host web-*
        User www

    Host *
        User fallback
        Port 2200
"""


def test_without_a_config_the_name_is_the_host_and_root_on_22_with_the_default_key() -> None:
    assert resolve_endpoint("db1", config=None, default_key=DEFAULT_KEY) == SshEndpoint(
        "db1", 22, "root", DEFAULT_KEY)


def test_a_host_entry_gives_hostname_user_port_and_the_first_identity_file(tmp_path: Path) -> None:
    assert _resolve(tmp_path, HOSTS, "db-prod") == SshEndpoint(
        "10.0.0.5", 2222, "deploy", Path("/etc/vmrepair/keys/db"))


def test_patterns_and_first_value_wins(tmp_path: Path) -> None:
    # web-1 matches `web-*` (User www) before `*` (User fallback, Port 2200).
    assert _resolve(tmp_path, HOSTS, "web-1") == SshEndpoint("web-1", 2200, "www", DEFAULT_KEY)


def test_the_url_user_and_port_win_over_the_file(tmp_path: Path) -> None:
    assert _resolve(tmp_path, HOSTS, "db-prod", user="admin", port=22) == SshEndpoint(
        "10.0.0.5", 22, "admin", Path("/etc/vmrepair/keys/db"))


def test_no_user_anywhere_means_root(tmp_path: Path) -> None:
    assert _resolve(tmp_path, "Host x\n  HostName 10.1.1.1\n", "x") == SshEndpoint(
        "10.1.1.1", 22, "root", DEFAULT_KEY)


def test_identity_file_tilde_is_the_invoking_users_home(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    endpoint = _resolve(tmp_path, "Host x\n  IdentityFile ~/.ssh/id_x\n", "x")
    assert endpoint.key_file == Path("/home/op/.ssh/id_x")


def test_proxyjump_chain_with_aliases_and_literal_hops(tmp_path: Path) -> None:
    text = """\
        Host target
            HostName 10.9.0.7
            ProxyJump bastion,ops@10.1.0.2:2200

        Host bastion
            HostName bastion.example.org
            User jump
            IdentityFile /etc/vmrepair/keys/bastion
            ProxyJump edge

        Host edge
            HostName 192.0.2.1
            User gate
            Port 443
    """
    endpoint = _resolve(tmp_path, text, "target")
    assert endpoint.jumps == (
        # The first hop's own ProxyJump comes first, as OpenSSH does.
        SshEndpoint("192.0.2.1", 443, "gate", DEFAULT_KEY),
        SshEndpoint("bastion.example.org", 22, "jump", Path("/etc/vmrepair/keys/bastion")),
        SshEndpoint("10.1.0.2", 2200, "ops", DEFAULT_KEY),
    )
    assert (endpoint.host, endpoint.port, endpoint.user) == ("10.9.0.7", 22, "root")


def test_proxyjump_none_and_ipv6_hops(tmp_path: Path) -> None:
    assert _resolve(tmp_path, "Host a\n  ProxyJump none\n", "a").jumps == ()
    hop = _resolve(tmp_path, "Host a\n  ProxyJump ssh://admin@[fd00::1]:22\n", "a").jumps
    assert hop == (SshEndpoint("fd00::1", 22, "admin", DEFAULT_KEY),)


def test_a_proxyjump_loop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n", "a")
    assert info.value.message.endswith(
        f"ProxyJump chain longer than {sshconfig.MAX_HOPS} hops (a loop?)")


@pytest.mark.parametrize(("line", "key", "why"), [
    ("ProxyCommand ssh -W %h:%p gw", "ProxyCommand", "runs a command"),
    ("LocalCommand echo hi", "LocalCommand", "runs a command"),
    ("PermitLocalCommand yes", "PermitLocalCommand", "runs a command"),
    ("KnownHostsCommand /bin/keys %H", "KnownHostsCommand", "runs a command"),
    ("Include ~/.ssh/more", "Include", "reads other files"),
])
def test_options_that_run_commands_are_refused_naming_file_and_key(
    tmp_path: Path, line: str, key: str, why: str
) -> None:
    path = _config(tmp_path, f"Host db\n  {line}\n")
    with pytest.raises(ConfigError) as info:
        resolve_endpoint("db", config=load_ssh_config(path), default_key=DEFAULT_KEY)
    assert info.value.message == f"ssh config {path}: host 'db': `{key}` {why}; vmrepair refuses it"
    assert info.value.file == str(path)
    assert info.value.remedy == REMEDY


def test_refused_options_of_other_hosts_do_not_matter(tmp_path: Path) -> None:
    text = "Host other\n  ProxyCommand nc %h %p\nHost db\n  ProxyCommand none\n  HostName 10.0.0.1\n"
    assert _resolve(tmp_path, text, "db").host == "10.0.0.1"


def test_a_refused_option_on_a_hop_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="host 'gw': `ProxyCommand` runs a command"):
        _resolve(tmp_path, "Host db\n  ProxyJump gw\nHost gw\n  ProxyCommand nc %h %p\n", "db")


def test_match_exec_is_refused_anywhere_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _config(tmp_path, f'Host db\n  User x\nMatch host nothing exec "touch {marker}"\n  User y\n')
    with pytest.raises(ConfigError) as info:
        load_ssh_config(path)
    assert info.value.message == (f"ssh config {path}: line 3: `Match exec` runs a command; vmrepair"
                                  " refuses it")
    assert not marker.exists()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_ssh_config(tmp_path / "nope")
    assert info.value.message == f"ssh config {tmp_path / 'nope'}: cannot read it: No such file or directory"
    assert info.value.file == str(tmp_path / "nope")


def test_a_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "Host db\n  HostName evil\n")
    path.chmod(0o620)
    with pytest.raises(ConfigError) as info:
        load_ssh_config(path)
    assert "unsafe: owner uid" in info.value.message and "mode 0620" in info.value.message
    assert info.value.remedy == f"chmod go-w {path}"


@pytest.mark.parametrize(("text", "key"), [
    ("Host db\n  Port http\n", "Port 'http'"),
    ("Host db\n  Port 70000\n", "Port '70000'"),
    ("Host db\n  User -oops\n", "User '-oops'"),
    ("Host db\n  HostName a;b\n", "HostName 'a;b'"),
    ("Host db\n  ProxyJump a b\n", "ProxyJump 'a b'"),
])
def test_unusable_values_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, text, "db")
    assert info.value.message.endswith(f"host 'db': {key}: not a valid value")


def test_a_relative_identity_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"IdentityFile 'keys/db': it must be an absolute path"):
        _resolve(tmp_path, "Host db\n  IdentityFile keys/db\n", "db")


def test_default_config_is_the_invoking_users_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshconfig.pwd, "getpwuid", lambda uid: SimpleNamespace(pw_dir=str(tmp_path)))
    assert default_ssh_config() is None
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("")
    assert default_ssh_config() == tmp_path / ".ssh" / "config"
