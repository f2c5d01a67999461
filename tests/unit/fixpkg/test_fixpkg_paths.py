"""Lexical path rules: canonical, no traversal, strictly under an allowed root."""

from __future__ import annotations

import pytest

from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import MakeDirOp, SetOwnerModeOp, WriteFileOp
from orchestrator.fixpkg.ops import validate_operations
from orchestrator.fixpkg.paths import SYSTEM_DIRS, SYSTEM_FILES, check_allowed, is_unit_file, normalise_path


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


# -- system paths: their own node only ------------------------------------------------------------

DEFAULT_ROOTS = ["/etc", "/opt", "/var/lib", "/var/log", "/usr/local/etc"]


def test_the_system_directories_are_the_sysdir_dir_rules_but_root() -> None:
    assert {"/tmp", "/var/tmp", "/etc", "/usr", "/var", "/etc/sudoers.d"} == SYSTEM_DIRS


@pytest.mark.parametrize("path", ["/tmp", "/var/tmp", "//tmp/", "/usr"])
def test_a_node_meta_operation_may_name_a_system_directory_outside_the_roots(path: str) -> None:
    assert check_allowed(path, DEFAULT_ROOTS, node_meta="dir") == normalise_path(path)


def test_the_system_files_are_the_sysdir_file_rules() -> None:
    assert {"/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/group", "/etc/sudoers"} == SYSTEM_FILES


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"])
def test_a_files_node_meta_operation_may_name_a_system_file_without_etc_among_the_roots(path: str) -> None:
    assert check_allowed(path, ["/etc/nginx"], node_meta="file") == path


@pytest.mark.parametrize(("path", "node_meta"), [
    ("/tmp", None),               # content operations: never
    ("/tmp/x", "dir"),            # below a system directory: never
    ("/var/tmp/evil.sh", None),
    ("/srv", "dir"),              # not a system directory
    ("/tmp", "file"),             # a system path as another type than its rule's
    ("/etc/shadow", "dir"),       # no make_dir of /etc/shadow
    ("/etc/shadow", None),        # its content: only under an allowed root
    ("/etc/shadow.new", "file"),
])
def test_everything_else_outside_the_roots_is_still_refused(path: str, node_meta: str | None) -> None:
    with pytest.raises(FixPackageError, match="outside the allowed roots"):
        check_allowed(path, ["/opt", "/var/lib", "/var/log", "/etc/nginx"], node_meta=node_meta)


def test_validate_operations_lets_set_owner_mode_of_tmp_through_but_no_write_below_it() -> None:
    validate_operations([SetOwnerModeOp("/tmp", "dir", 0o1777, 0, 0, 0o755, 0, 0, None, None)], DEFAULT_ROOTS)
    validate_operations([MakeDirOp("/var/tmp", 0o1777, 0, 0)], DEFAULT_ROOTS)
    with pytest.raises(FixPackageError, match=r"operations\[0\]: path /tmp/x is outside the allowed roots"):
        validate_operations([WriteFileOp("/tmp/x", "0" * 64, 1, 0o644, 0, 0, "absent")], DEFAULT_ROOTS)
    with pytest.raises(FixPackageError, match="outside the allowed roots"):
        validate_operations([SetOwnerModeOp("/tmp/x", "dir", 0o700, 0, 0, 0o755, 0, 0, None, None)],
                            DEFAULT_ROOTS)


SHADOW_SHA = "5" * 64


@pytest.mark.parametrize(("path", "mode", "gid"), [("/etc/shadow", 0o640, 42), ("/etc/gshadow", 0o640, 42),
                                                   ("/etc/sudoers", 0o440, 0)])
def test_validate_operations_accepts_set_owner_mode_of_a_system_file_outside_the_roots(
    path: str, mode: int, gid: int
) -> None:
    op = SetOwnerModeOp(path, "file", mode, 0, gid, 0o644, 0, gid, SHADOW_SHA, None)
    validate_operations([op], ["/etc/nginx"])
    validate_operations([op], DEFAULT_ROOTS)


def test_validate_operations_refuses_writing_etc_shadow_unless_etc_is_an_allowed_root() -> None:
    write = WriteFileOp("/etc/shadow", SHADOW_SHA, 10, 0o640, 0, 42, "6" * 64)
    with pytest.raises(FixPackageError, match=r"operations\[0\]: path /etc/shadow is outside the allowed"):
        validate_operations([write], ["/etc/nginx", "/var/lib"])
    # /etc is one of the default roots: the path rule then allows it like any file below /etc (a
    # system path's repair never produces one: see fixpkg.compute's meta_only).
    validate_operations([write], DEFAULT_ROOTS)
    with pytest.raises(FixPackageError, match="outside the allowed roots"):
        validate_operations([MakeDirOp("/etc/shadow", 0o755, 0, 0)], ["/etc/nginx"])
