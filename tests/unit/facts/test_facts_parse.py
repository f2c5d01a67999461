"""Parsing what a target says about itself: total on any text, hostile values refused and counted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.facts.parse import (
    directory_path,
    environment_file_paths,
    exec_paths,
    parse_deb822_sources,
    parse_dpkg_search,
    parse_os_release,
    parse_packages,
    parse_sources_list,
    unit_states_from_tree,
)

BOOKWORM = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
"""


def test_os_release_of_debian_12() -> None:
    os_release = parse_os_release(BOOKWORM)
    assert os_release is not None
    assert (os_release.id, os_release.version_id, os_release.codename) == ("debian", "12", "bookworm")
    assert str(os_release) == "Debian GNU/Linux 12 (bookworm)"


def test_os_release_without_a_valid_id_is_none() -> None:
    assert parse_os_release("NAME=x\n") is None
    assert parse_os_release("ID=../../etc\n") is None
    assert parse_os_release('ID="deb ian"\n') is None


def test_os_release_drops_a_hostile_codename_and_unprintable_pretty_name() -> None:
    os_release = parse_os_release('ID=debian\nVERSION_CODENAME="$(rm -rf /)"\nPRETTY_NAME="a\x1b[31mb"\n')
    assert os_release is not None
    assert os_release.codename == ""
    assert os_release.pretty_name == "a[31mb"


def _pkg(name: str, version: str = "1.0-1", arch: str = "amd64", abbrev: str = "ii ",
         status: str = "install ok installed") -> str:
    return f"{name}\t{version}\t{arch}\t{abbrev}\t{status}"


def test_packages_installed_held_and_half_configured() -> None:
    text = "\n".join([
        _pkg("nginx-common", "1.22.1-9+deb12u9", "all"),
        _pkg("libc6:amd64", "2.36-9+deb12u10"),
        _pkg("mariadb-server", "1:10.11.6-0+deb12u1", status="hold ok installed"),
        _pkg("broken", abbrev="iF ", status="install ok half-configured"),
        _pkg("gone", abbrev="rc ", status="deinstall ok config-files"),
        _pkg("never", abbrev="un ", status="unknown ok not-installed"),
    ])
    parsed = parse_packages(text)
    assert parsed.rejected == 0
    by_name = {p.name: p for p in parsed.items}
    assert set(by_name) == {"nginx-common", "libc6", "mariadb-server", "broken"}
    assert by_name["libc6"].spec == "libc6:amd64=2.36-9+deb12u10"
    assert by_name["mariadb-server"].held and by_name["mariadb-server"].version == "1:10.11.6-0+deb12u1"
    assert by_name["broken"].status == "iF" and not by_name["broken"].is_installed


def test_hostile_package_lines_are_refused_and_counted() -> None:
    text = "\n".join([
        _pkg("../../etc/passwd"), _pkg("-rf"), _pkg("UPPER"), _pkg("ok", version="1.0; rm -rf /"),
        _pkg("ok2", arch="amd 64"), "just one field", _pkg("ok3", abbrev="zz "), _pkg("fine"),
    ])
    parsed = parse_packages(text)
    assert [p.name for p in parsed.items] == ["fine"]
    assert parsed.rejected == 7


def test_masked_and_enabled_units_from_their_symlinks() -> None:
    roots = ("/etc/systemd/system", "/run/systemd/system")
    parsed = unit_states_from_tree([
        ("/etc/systemd/system/nginx.service", "symlink", "/dev/null"),
        ("/run/systemd/system/cron.service", "symlink", "/dev/null"),
        ("/etc/systemd/system/multi-user.target.wants/ssh.service", "symlink", "/lib/systemd/system/x"),
        ("/etc/systemd/system/multi-user.target.wants/nginx.service", "symlink", "/lib/systemd/system/x"),
        ("/etc/systemd/system/sampleapp.service", "file", None),          # a unit file: no state from it
        ("/etc/systemd/system/evil\nname.service", "symlink", "/dev/null"),
        ("/etc/other/x.service", "symlink", "/dev/null"),                   # not under a root
    ], roots)
    assert [(u.unit, u.state) for u in parsed.items] == [
        ("cron.service", "masked"), ("nginx.service", "masked"), ("ssh.service", "enabled")]
    assert parsed.rejected == 1


def test_one_line_sources_with_options_and_comments() -> None:
    parsed = parse_sources_list(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main contrib\n"
        "deb-src http://deb.debian.org/debian bookworm main\nrubbish here\n"
        "deb javascript:alert(1) bookworm main\n", "/etc/apt/sources.list")
    assert [(s.type, s.uri, s.suite, s.components) for s in parsed.items] == [
        ("deb", "http://deb.debian.org/debian", "bookworm", ("main", "contrib")),
        ("deb-src", "http://deb.debian.org/debian", "bookworm", ("main",))]
    assert parsed.rejected == 2


def test_deb822_sources_expand_types_uris_and_suites_and_skip_disabled() -> None:
    text = ("Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            "Types: deb\nURIs: http://example.invalid/x\nSuites: x\nEnabled: no\n")
    parsed = parse_deb822_sources(text, "/etc/apt/sources.list.d/debian.sources")
    assert len(parsed.items) == 4
    assert {(s.type, s.suite) for s in parsed.items} == {
        ("deb", "bookworm"), ("deb", "bookworm-updates"),
        ("deb-src", "bookworm"), ("deb-src", "bookworm-updates")}


def test_exec_paths_of_systemctl_show() -> None:
    value = ("{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; master_process on; ; "
             "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
             " { path=/opt/app/venv/bin/python ; argv[]=python -m app ; ignore_errors=yes }")
    assert exec_paths(value) == ["/usr/sbin/nginx", "/opt/app/venv/bin/python"]
    assert exec_paths("{ path=/opt/../etc/shadow ; }") == []
    assert exec_paths("") == []


def test_directories_and_environment_files() -> None:
    assert directory_path("/srv/app") == "/srv/app"
    assert directory_path("!/srv/app") == "/srv/app"
    assert directory_path("~") is None
    assert directory_path("/srv/a b") is None
    assert environment_file_paths("/etc/default/nginx (ignore_errors=yes)\n-/etc/x (ignore_errors=no)") == [
        "/etc/default/nginx", "/etc/x"]


def test_dpkg_search_owned_paths_and_diversions() -> None:
    out = ("nginx-core: /usr/sbin/nginx\ndiversion by dash from: /bin/sh\n"
           "libc6:amd64, libc6-dev:amd64: /usr/lib/x86_64-linux-gnu\nevil$(x): /etc/x\n")
    assert parse_dpkg_search(out) == {"/usr/sbin/nginx": "nginx-core",
                                      "/usr/lib/x86_64-linux-gnu": "libc6:amd64, libc6-dev:amd64"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_parsers_are_total_on_any_text(text: str) -> None:
    parse_os_release(text)
    for parsed in (parse_packages(text), parse_sources_list(text, "/f"),
                   parse_deb822_sources(text, "/f")):
        assert parsed.rejected >= 0
    for path in exec_paths(text) + environment_file_paths(text) + list(parse_dpkg_search(text)):
        assert path.startswith("/") and ".." not in path.split("/") and path.isprintable()
