"""Discovery on recorded output of the template guest: parsing, components, hostile and odd input."""

from __future__ import annotations

import pytest

from orchestrator.discover import parse
from orchestrator.discover.build import component_name, components, config_paths_from_conffiles
from orchestrator.discover.read import SHOW_CHUNK, discover
from tests.unit.discover.fakes import DATA, DiscoveryHost


def by_name(host: DiscoveryHost | None = None) -> dict[str, object]:
    found = discover((host or DiscoveryHost()).transport())
    return {c.name: c for c in components(found)}


def test_list_units_parses_the_recorded_listing() -> None:
    listing = parse.parse_list_units((DATA / "list-units.txt").read_text())
    assert listing.rejected == 0
    units = {u.unit: u for u in listing.units}
    assert units["nginx.service"] == parse.ListedUnit("nginx.service", "loaded", "active", "running")
    assert units["auditd.service"].load == "not-found"


def test_list_units_refuses_lines_that_are_not_units() -> None:
    text = ("● nginx.service loaded failed failed nginx\n"
            "evil;rm -rf /.service loaded active running x\n"
            "x.service LOADED active running\n\n")
    listing = parse.parse_list_units(text)
    assert [u.unit for u in listing.units] == ["nginx.service"]
    assert listing.rejected == 2


def test_ss_listeners_map_ports_to_every_pid_holding_them() -> None:
    listeners = parse.parse_ss_listeners((DATA / "ss.txt").read_text())
    assert {(lst.port, lst.pids) for lst in listeners} == {
        (8080, (229,)), (22, (234,)), (80, (238, 237, 236))}
    odd = parse.parse_ss_listeners("LISTEN 0 5 127.0.0.1%lo:53 0.0.0.0:*\nLISTEN 0 5 *:99999 *:*\nnoise\n")
    assert [(lst.port, lst.pids) for lst in odd] == [(53, ())]


def test_conffiles_per_package_without_obsolete_ones() -> None:
    conf = parse.parse_conffiles((DATA / "conffiles.txt").read_text()
                                 + "bad name!\n /etc/x 00\nfoo\n /etc/foo/a 00 obsolete\n /etc/foo/b 00\n")
    assert "/etc/nginx/nginx.conf" in conf["nginx-common"]
    assert conf["foo"] == ["/etc/foo/b"]
    assert "bad name!" not in conf


@pytest.mark.parametrize(("value", "root", "expected"), [
    ("mysql foo/bar", "/var/lib", ["/var/lib/mysql", "/var/lib/foo/bar"]),
    ("/abs ../up ok:link", "/var/log", ["/var/log/ok"]),
])
def test_state_directories_are_relative_to_their_root(value: str, root: str, expected: list[str]) -> None:
    assert parse.state_paths(value, root) == expected


def test_read_write_paths_lose_their_prefixes() -> None:
    assert parse.rw_paths("-/var/lib/x +/srv/y relative /a/../b") == ["/var/lib/x", "/srv/y"]


def test_template_services_become_components_with_what_their_units_say() -> None:
    comps = by_name()
    nginx = comps["nginx"]
    assert nginx.units == ("nginx.service",) and nginx.ports == (80,) and nginx.vital
    assert nginx.config_test == ("nginx", "-t") and "/etc/nginx" in nginx.config_paths
    # The override locations are watched before they exist (a baseline records them as absent).
    assert nginx.unit_paths == ("/etc/systemd/system/nginx.service", "/etc/systemd/system/nginx.service.d")
    app = comps["sampleapp"]
    assert app.unit_paths[0] == "/etc/systemd/system/sampleapp.service"   # an admin's own unit file
    assert "/etc/default/sampleapp" in app.config_paths                    # its EnvironmentFile
    assert (app.user, app.writable_paths, app.ports, app.vital) == (
        "sampleapp", ("/var/lib/sampleapp",), (8080,), True)
    assert comps["sshd"].units == ("ssh.service",)                          # the profile's name
    assert comps["rsyslog"].sockets == ("syslog.socket",)
    assert comps["dbus"].sockets == ("dbus.socket",) and not comps["dbus"].vital
    assert "getty-tty1" in comps
    assert all(c.origin == "discovered" for c in comps.values())


def test_boot_oneshots_masked_and_inactive_units_are_not_services() -> None:
    comps = by_name()
    assert "kmod-static-nodes" not in comps        # static, ran at boot, exited
    assert "e2scrub-reap" not in comps             # masked
    assert "dpkg-db-backup" not in comps           # static, inactive


def test_a_package_without_profile_contributes_its_conffiles_never_secrets() -> None:
    assert config_paths_from_conffiles([
        "/etc/redis/redis.conf", "/etc/redis/sentinel.conf", "/etc/default/redis",
        "/etc/ssh/moduli", "/etc/ssl/private/key.pem", "/etc/foo.conf", "/usr/share/x"]) == [
        "/etc/default/redis", "/etc/foo.conf", "/etc/redis"]


@pytest.mark.parametrize(("unit", "name"), [
    ("getty@tty1.service", "getty-tty1"), ("serial-getty@ttyS0.service", "serial-getty-ttys0"),
    ("e2scrub_reap.service", "e2scrub_reap"), ("-weird.service", "weird"),
    ("@.service", "unit"), ("x" * 80 + ".service", "x" * 41),
])
def test_component_names_are_valid(unit: str, name: str) -> None:
    assert component_name(unit) == name


def test_without_systemd_nothing_is_discovered_and_it_says_why() -> None:
    found = discover(DiscoveryHost(has_systemd=False).transport())
    assert (found.units, found.unavailable) == ((), "the target does not run systemd as PID 1")


def test_a_failed_show_makes_discovery_incomplete() -> None:
    found = discover(DiscoveryHost(show_fails=True).transport())
    assert not found.complete and found.units == ()


def test_two_thousand_units_cost_a_fixed_number_of_commands() -> None:
    units = [f"svc{i}.service" for i in range(2000)]
    host = DiscoveryHost(list_units="".join(f"{u} loaded active running x\n" for u in units), ss="")
    host.shows.update({u: f"Id={u}\nLoadState=loaded\nActiveState=active\nSubState=running\n" for u in units})
    found = discover(host.transport())
    assert len(found.units) == 2000
    shows = [c for c in host.calls if c[:2] == ("systemctl", "show")]
    assert len(shows) == -(-2000 // SHOW_CHUNK)
    assert len(components(found)) == 2000


def test_hostile_show_values_are_dropped() -> None:
    host = DiscoveryHost(list_units="evil.service loaded active running x\n", ss="")
    host.shows["evil.service"] = (
        "Id=evil.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
        "FragmentPath=relative/x\nUser=root; rm -rf /\nStateDirectory=../../etc\n"
        "ReadWritePaths=/ok /has space\nEnvironmentFiles=-/etc/default/evil (ignore_errors=yes)\n")
    (comp,) = components(discover(host.transport()))
    assert comp.user == "" and comp.writable_paths == ("/ok", "/has")
    assert comp.config_paths == ("/etc/default/evil",)
    assert comp.unit_paths == ("/etc/systemd/system/evil.service", "/etc/systemd/system/evil.service.d")


def test_configured_units_are_asked_about_even_when_not_loaded() -> None:
    host = DiscoveryHost()
    found = discover(host.transport(), also=["missing.service"])
    assert found.unit("missing.service").load == "not-found"


def test_a_configured_unit_that_is_masked_still_gets_its_profile() -> None:
    """Masked nginx is neither enabled nor running: only because it is configured is it a component,
    and it must keep what its profile knows (the capture of a masked nginx needs /etc/nginx)."""
    host = DiscoveryHost()
    host.shows["nginx.service"] = ("Id=nginx.service\nNames=nginx.service\nLoadState=masked\n"
                                   "ActiveState=inactive\nSubState=dead\nUnitFileState=masked\n"
                                   "FragmentPath=/dev/null\nMainPID=0\n")
    found = discover(host.transport(), also=["nginx.service"])
    assert "nginx" not in {c.name for c in components(found)}
    (nginx,) = [c for c in components(found, include=["nginx.service"]) if c.name == "nginx"]
    assert "/etc/nginx" in nginx.config_paths and nginx.config_test == ("nginx", "-t")
    assert not any(c[:2] == ("dpkg-query", "-S") and "/dev/null" in c for c in host.calls)


def test_a_host_s_units_are_shown_in_two_halves_and_kept_in_listing_order() -> None:
    """Two ``systemctl show`` side by side (the first show after a boot is slow under TCG); every
    loaded unit asked exactly once, and the facts come back in the listing's order."""
    units = [f"svc{i}.service" for i in range(7)]
    host = DiscoveryHost(list_units="".join(f"{u} loaded active running x\n" for u in units), ss="")
    host.shows.update({u: f"Id={u}\nLoadState=loaded\nActiveState=active\nSubState=running\n" for u in units})
    found = discover(host.transport())
    shows = [c for c in host.calls if c[:2] == ("systemctl", "show")]
    asked = [list(c[c.index("--") + 1:]) for c in shows]
    assert sorted(len(a) for a in asked) == [3, 4]
    assert sorted(u for a in asked for u in a) == sorted(units)
    assert [u.unit for u in found.units] == units
