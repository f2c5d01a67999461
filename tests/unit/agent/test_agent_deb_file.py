"""deb_file: a config file's pristine bytes read straight out of the package's .deb, nothing unpacked."""

from __future__ import annotations

import base64
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.debs import Member, write_deb

Call = Callable[..., dict[str, Any]]
NAME = "nginx-common_1.22.1-9_all.deb"
SITE = b"server {\n\tlisten 80 default_server;\n}\n"
#: What the package ships, in the archive's order: the file asked for after its directories, a member
#: whose name climbs out with '..', and a symlink to the file.
MEMBERS = [Member(name, tarfile.DIRTYPE, 0o755) for name in ("./", "./etc/", "./etc/nginx/")] + [
    Member("./etc/nginx/sites-available/default", data=SITE),
    Member("./etc/nginx/../shadow", data=b"not the package's"),
    Member("./etc/nginx/sites-enabled/default", tarfile.SYMTYPE, 0o777,
           link="/etc/nginx/sites-available/default")]


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_a_shipped_file_comes_back_byte_for_byte(call: Call, archives: Path, compression: str) -> None:
    deb = write_deb(archives, NAME, MEMBERS, compression)
    answer = call("deb_file", deb=str(deb), path="/etc/nginx/sites-available/default", max_bytes=1024)
    assert answer["ok"], answer
    assert answer["result"] == {"found": True, "data_b64": base64.b64encode(SITE).decode()}


@pytest.mark.parametrize("path", ["/etc/nginx/sites-enabled/default", "/etc/nginx", "/etc/nginx/gone",
                                  "/etc/shadow"])
def test_a_symlink_a_directory_an_absent_path_or_a_dotdot_member_is_not_found(
        call: Call, archives: Path, path: str) -> None:
    """A member named with '..' is never taken for the path it would resolve to."""
    deb = write_deb(archives, NAME, MEMBERS)
    assert call("deb_file", deb=str(deb), path=path, max_bytes=1024)["result"] == {"found": False}


def test_a_file_over_max_bytes_is_refused(call: Call, archives: Path) -> None:
    deb = write_deb(archives, NAME, MEMBERS)
    answer = call("deb_file", deb=str(deb), path="/etc/nginx/sites-available/default", max_bytes=8)
    assert (answer["ok"], answer["code"]) == (False, "too_large")


@pytest.mark.parametrize(("args", "code"), [
    ({"deb": "/tmp/x.deb", "path": "/etc/a", "max_bytes": 1}, "invalid"),
    ({"deb": "ARCHIVES/nginx_1_all.deb", "path": "/etc/a", "max_bytes": 1}, "not_found"),
    ({"deb": "ARCHIVES/" + NAME, "path": "etc/a", "max_bytes": 1}, "invalid"),
    ({"deb": "ARCHIVES/" + NAME, "path": "/etc/a", "max_bytes": 1 << 40}, "invalid"),
])
def test_bad_requests_are_refused(call: Call, archives: Path, args: dict[str, Any], code: str) -> None:
    write_deb(archives, NAME, MEMBERS)
    args = {k: v.replace("ARCHIVES", str(archives)) if isinstance(v, str) else v for k, v in args.items()}
    answer = call("deb_file", **args)
    assert (answer["ok"], answer["code"]) == (False, code)


def test_an_archive_with_an_unsupported_compression_is_invalid(call: Call, archives: Path) -> None:
    """zstd (Ubuntu's default): the caller then unpacks with dpkg-deb instead."""
    from tests.unit.debs import deb
    (archives / NAME).write_bytes(deb(MEMBERS, "gz", data_name="data.tar.zst"))
    answer = call("deb_file", deb=str(archives / NAME), path="/etc/nginx/sites-available/default",
                  max_bytes=1024)
    assert (answer["ok"], answer["code"]) == (False, "invalid")
    assert "unsupported compression" in answer["error"]
