"""The daemon profiles: a table other code trusts blindly, so its invariants are checked here."""

from __future__ import annotations

import posixpath
import re
from collections import Counter

import pytest

from orchestrator.discover.profiles import (
    PROFILES,
    SUDOERS_CHECK,
    SUDOERS_PATHS,
    Profile,
    profile_for,
    template_of,
)
from orchestrator.facts.parse import PACKAGE_NAME
from orchestrator.systemd.argv import is_unit_name

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: Directories that hold private keys or secret files: a profile may name files in them, never them.
SECRET_DIRS = ("/etc/ssh", "/etc/ssl", "/etc/bind", "/etc/unbound", "/etc/dovecot", "/etc/exim4",
               "/etc/varnish", "/etc/chrony", "/etc/cups", "/etc/postfix")
SECRET_HINTS = ("private", ".key", ".pem", "secret", "passwd", "rndc")


def by_name(name: str) -> Profile:
    return next(p for p in PROFILES if p.name == name)


def all_paths(profile: Profile) -> tuple[str, ...]:
    return profile.config_paths + profile.log_paths


def test_the_table_covers_at_least_18_daemons() -> None:
    assert len(PROFILES) >= 18


def test_names_are_canonical_and_unique() -> None:
    names = [p.name for p in PROFILES]
    assert [n for n in names if not NAME.fullmatch(n)] == []
    assert [n for n, count in Counter(names).items() if count > 1] == []


def test_the_names_playbooks_use_are_kept() -> None:
    assert profile_for("nginx.service") == by_name("nginx")
    assert profile_for("ssh.service") == by_name("sshd")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_units_are_systemd_service_names(profile: Profile) -> None:
    assert profile.units, "a profile nobody can match is dead weight"
    for unit in profile.units:
        assert is_unit_name(unit), unit
        assert unit.endswith(".service"), unit
        # A template is listed bare (foo@.service); an instance name would match one host's unit only.
        assert "@" not in unit or unit.endswith("@.service"), unit


def test_no_unit_belongs_to_two_profiles() -> None:
    units = Counter(u for p in PROFILES for u in p.units)
    assert [u for u, count in units.items() if count > 1] == []


@pytest.mark.parametrize("profile", [p for p in PROFILES if p.config_test], ids=lambda p: p.name)
def test_a_config_test_starts_with_a_bare_program_name(profile: Profile) -> None:
    program = profile.config_test[0]
    # Found on PATH on the host it runs on: an absolute path would pin one layout (usr-merge or not).
    assert program and "/" not in program and not program.startswith("-"), profile.config_test
    assert all(arg and arg.strip() == arg for arg in profile.config_test), profile.config_test


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_paths_are_absolute_and_normalized(profile: Profile) -> None:
    for path in all_paths(profile):
        assert posixpath.isabs(path) and posixpath.normpath(path) == path, path
    assert all(p.startswith("/etc/") for p in profile.config_paths), profile.config_paths
    assert all(p.startswith("/var/log") for p in profile.log_paths), profile.log_paths
    assert len(set(all_paths(profile))) == len(all_paths(profile))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_no_config_path_takes_private_keys_along(profile: Profile) -> None:
    for path in profile.config_paths:
        assert path not in SECRET_DIRS, path
        assert not any(hint in path for hint in SECRET_HINTS), path


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_packages_are_debian_package_names(profile: Profile) -> None:
    assert profile.packages
    assert [p for p in profile.packages if not PACKAGE_NAME.fullmatch(p)] == []


# What the hard-coded defaults said about the template's daemons before discovery replaced them:
# the profiles must keep saying it (playbooks, baselines and captures rely on these paths).
FORMER_DEFAULTS = {
    "nginx": (("/etc/nginx",), ("nginx", "-t"), ("nginx", "nginx-common"), ("/var/log/nginx",), None),
    "sshd": (("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"), ("sshd", "-t"), ("openssh-server",), (),
             None),
    "cron": (("/etc/crontab", "/etc/cron.d"), (), ("cron",), (), False),
    "rsyslog": (("/etc/rsyslog.conf", "/etc/rsyslog.d"), ("rsyslogd", "-N1"), ("rsyslog",), ("/var/log",),
                False),
}


@pytest.mark.parametrize("name", sorted(FORMER_DEFAULTS))
def test_the_template_daemons_keep_what_the_defaults_said(name: str) -> None:
    profile = by_name(name)
    assert (profile.config_paths, profile.config_test, profile.packages, profile.log_paths,
            profile.vital) == FORMER_DEFAULTS[name]


@pytest.mark.parametrize(("unit", "name"), [
    ("named.service", "bind9"),
    ("bind9.service", "bind9"),
    ("mysql.service", "mariadb"),
    ("chronyd.service", "chrony"),
    ("postgresql.service", "postgresql"),
])
def test_aliases_find_the_same_profile(unit: str, name: str) -> None:
    found = profile_for(unit)
    assert found is not None and found.name == name


@pytest.mark.parametrize(("unit", "name"), [
    ("postgresql@15-main.service", "postgresql"),
    ("postgresql@.service", "postgresql"),
    ("postfix@-.service", "postfix"),
    ("redis-server@cache.service", "redis"),
])
def test_a_template_instance_gets_the_template_profile(unit: str, name: str) -> None:
    found = profile_for(unit)
    assert found is not None and found.name == name


@pytest.mark.parametrize("unit", [
    "nosuch.service",
    "getty@tty1.service",
    # nginx lists no template: an instance is not the nginx the profile describes.
    "nginx@other.service",
    "apache2@second.service",
    "nginx.socket",
    "",
    "@.service",
])
def test_an_unknown_unit_has_no_profile(unit: str) -> None:
    assert profile_for(unit) is None


@pytest.mark.parametrize(("unit", "template"), [
    ("postgresql@15-main.service", "postgresql@.service"),
    ("getty@tty1.service", "getty@.service"),
    ("foo@a.b.service", "foo@.service"),
    ("foo@bar.socket", "foo@.socket"),
    ("postgresql@.service", None),
    ("nginx.service", None),
    ("@x.service", None),
    ("foo@bar", None),
])
def test_template_of(unit: str, template: str | None) -> None:
    assert template_of(unit) == template


def test_the_sudoers_check_is_a_host_check_not_a_profile() -> None:
    assert SUDOERS_CHECK == ("visudo", "-c")
    assert all(posixpath.isabs(p) for p in SUDOERS_PATHS)
    assert not any("sudo" in p.name for p in PROFILES)
