"""Target strings: `local`, `vm:NAME`, `ssh://[user@]host[:port]`; their slugs; opening ssh:// targets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.app import App
from orchestrator.config.settings import Settings, TargetSettings
from orchestrator.errors import ConfigError
from orchestrator.targets.spec import TargetKind, TargetSpec, open_target, parse_target
from orchestrator.transport.local import LocalTransport

FORMS = ("use `local`, `vm:NAME` (a VM from `vmrepair vm up NAME`) or `ssh://[user@]host[:port]` (host may"
         " be a Host of your ssh config)")
VM_RULE = "use 1-40 lowercase letters, digits and '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("text", "spec", "shown", "slug"),
    [
        ("local", TargetSpec(TargetKind.LOCAL, "local"), "local", "local"),
        ("vm:web-1", TargetSpec(TargetKind.VM, "web-1"), "vm:web-1", "vm_web-1"),
        ("ssh://deploy@db1.example.org", TargetSpec(TargetKind.SSH, "db1.example.org", "deploy", 22),
         "ssh://deploy@db1.example.org:22", "ssh_deploy_db1.example.org_22"),
        ("ssh://root@10.0.0.5:2222", TargetSpec(TargetKind.SSH, "10.0.0.5", "root", 2222),
         "ssh://root@10.0.0.5:2222", "ssh_root_10.0.0.5_2222"),
        ("ssh://admin@[::1]:22", TargetSpec(TargetKind.SSH, "::1", "admin", 22),
         "ssh://admin@[::1]:22", "ssh_admin_1_22"),
        ("ssh://root@host/", TargetSpec(TargetKind.SSH, "host", "root", 22), "ssh://root@host:22",
         "ssh_root_host_22"),
        # ssh config aliases: what was not typed stays open (None) and is not invented in the name.
        ("ssh://db-prod", TargetSpec(TargetKind.SSH, "db-prod", None, None), "ssh://db-prod", "ssh_db-prod"),
        ("ssh://db-prod:2222", TargetSpec(TargetKind.SSH, "db-prod", None, 2222), "ssh://db-prod:2222",
         "ssh_db-prod_2222"),
        ("ssh://deploy@db-prod", TargetSpec(TargetKind.SSH, "db-prod", "deploy", 22),
         "ssh://deploy@db-prod:22", "ssh_deploy_db-prod_22"),
        ("ssh://[fe80::1]", TargetSpec(TargetKind.SSH, "fe80::1", None, None), "ssh://[fe80::1]",
         "ssh_fe80_1"),
    ],
)
def test_valid_targets(text: str, spec: TargetSpec, shown: str, slug: str) -> None:
    parsed = parse_target(text)
    assert parsed == spec
    assert str(parsed) == shown
    assert parsed.slug == slug
    assert parse_target(str(parsed)) == parsed  # sessions store str(spec); it must parse back


@pytest.mark.parametrize(
    "text",
    ["ssh://", "ssh://-oProxyCommand=x", "ssh://.hidden",
     "ftp://x", "", "LOCAL", "ssh://root@", "ssh://Root@host", "ssh://root@host:port",
     "ssh://root@ho st", "ssh://root@host;reboot", "ssh://root@host:22:33", "ssh://-oProxyCommand=x@h",
     "ssh://root@[::1", "ssh://root@host:123456"],
)
def test_malformed_targets_list_the_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(text)
    assert info.value.message == f"invalid target {text!r}"
    assert info.value.remedy == FORMS


@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_port_out_of_range_is_named(port: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(f"ssh://root@host:{port}")
    assert info.value.message == f"target 'ssh://root@host:{port}': port {port} out of range (1-65535)"
    assert info.value.remedy == FORMS


@pytest.mark.parametrize("name", ["", "../x", "Web", "-web", "web_1", "a" * 41, "web/1"])
def test_invalid_vm_names_state_the_rule(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(f"vm:{name}")
    assert info.value.message == f"invalid target 'vm:{name}': invalid VM name {name!r}: {VM_RULE}"
    assert info.value.remedy == FORMS


def test_slugs_of_different_kinds_differ() -> None:
    slugs = {parse_target(t).slug for t in ("local", "vm:local", "ssh://root@local", "ssh://root@local:23")}
    assert len(slugs) == 4


def test_ssh_target_without_pinned_host_keys_is_refused(make_settings: Callable[..., Settings]) -> None:
    # Constructing App opens nothing: libvirt is only contacted through App.conn.
    app = App(make_settings(targets=TargetSettings()))
    with pytest.raises(ConfigError) as info:
        open_target(app, parse_target("ssh://root@db1:2222"))
    assert info.value.message == ("target ssh://root@db1:2222: no known_hosts file configured to pin "
                                  "its host key")
    assert info.value.remedy is not None
    assert "`targets: {known_hosts: /etc/vmrepair/known_hosts}`" in info.value.remedy
    assert app._conn is None


def test_local_target_is_the_apps_local_transport(settings: Settings) -> None:
    app = App(settings)
    transport = open_target(app, parse_target("local"))
    assert isinstance(transport, LocalTransport)
    assert transport is app.local
