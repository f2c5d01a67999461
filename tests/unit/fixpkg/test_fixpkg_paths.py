"""Lexical path rules: canonical, no traversal, strictly under an allowed root."""

from __future__ import annotations

import pytest

from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.paths import check_allowed, is_unit_file, normalise_path


def test_normalise_collapses_slashes_and_dots() -> None:
    assert normalise_path("//etc//app/./app.conf/") == "/etc/app/app.conf"


@pytest.mark.parametrize(("path", "reason"), [
    ("etc/app.conf", "not absolute"),
    ("/etc/app/../../root/.ssh/authorized_keys", "contains '..'"),
    ("/etc/app/..", "contains '..'"),
    ("/etc/app\0.conf", "NUL/newline"),
    ("/etc/app\n.conf", "NUL/newline"),
    ("/", "cannot be the subject"),
    ("", "non-empty string"),
])
def test_malformed_paths_are_refused(path: str, reason: str) -> None:
    with pytest.raises(FixPackageError) as info:
        normalise_path(path)
    assert reason in info.value.message


def test_path_outside_roots_names_path_and_roots() -> None:
    with pytest.raises(FixPackageError) as info:
        check_allowed("/root/.bashrc", ["/etc", "/var/log"])
    assert info.value.message == "path /root/.bashrc is outside the allowed roots (/etc, /var/log)"
    assert info.value.remedy and "allowed_roots" in info.value.remedy


def test_prefix_is_not_containment() -> None:
    with pytest.raises(FixPackageError, match="outside"):
        check_allowed("/etcetera/passwd", ["/etc"])
    with pytest.raises(FixPackageError, match="outside"):
        check_allowed("/etc", ["/etc"])  # the root itself is a directory, never a file operation


def test_allowed_path_is_returned_canonical() -> None:
    assert check_allowed("/etc//nginx/./nginx.conf", ["/etc/"]) == "/etc/nginx/nginx.conf"


def test_unit_files() -> None:
    assert is_unit_file("/etc/systemd/system/app.service.d/override.conf")
    assert not is_unit_file("/etc/systemd/journald.conf")
