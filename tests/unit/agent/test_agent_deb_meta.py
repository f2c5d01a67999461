"""deb_meta: modes and owners as a package's own .deb ships them, read from a hostile-minded archive."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.remote import vmrepair_agent
from tests.unit.debs import Member, ar, data_tar, deb, write_deb

Call = Callable[..., dict[str, Any]]
NAME = "nginx-common_1.22.1-9_all.deb"
MEMBERS = [Member("./", tarfile.DIRTYPE, 0o755), Member("./etc/", tarfile.DIRTYPE, 0o755),
           Member("./etc/nginx/", tarfile.DIRTYPE, 0o755),
           Member("./etc/nginx/nginx.conf", mode=0o644),
           Member("./usr/bin/helper", mode=0o4755, gid=33, gname="www-data"),
           Member("./etc/nginx/sites-enabled/default", tarfile.SYMTYPE, 0o777,
                  link="/etc/nginx/sites-available/default")]


def dpkg_list(archives: Path, name: str, paths: list[str]) -> None:
    (archives.parent / "info" / name).write_text("".join(f"{p}\n" for p in paths))


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_modes_owners_and_setuid_are_reported_and_absent_paths_named(
        call: Call, archives: Path, compression: str) -> None:
    path = write_deb(archives, NAME, MEMBERS, compression)
    answer = call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf", "/usr/bin/helper",
                                                     "/etc/nginx/sites-enabled/default", "/etc/nginx/gone"])
    assert answer["ok"], answer
    by_path = {e["path"]: e for e in answer["result"]["entries"]}
    assert by_path["/etc/nginx/nginx.conf"] == {"path": "/etc/nginx/nginx.conf", "type": "file",
                                                "mode": 0o644, "uid": 0, "gid": 0, "uname": "root",
                                                "gname": "root"}
    assert (by_path["/usr/bin/helper"]["mode"], by_path["/usr/bin/helper"]["gname"]) == (0o4755, "www-data")
    assert by_path["/etc/nginx/sites-enabled/default"]["type"] == "symlink"
    assert answer["result"]["absent"] == ["/etc/nginx/gone"]


def test_a_directory_member_is_found_by_its_normalised_name(call: Call, archives: Path) -> None:
    path = write_deb(archives, NAME, MEMBERS)
    answer = call("deb_meta", deb=str(path), paths=["/etc/nginx"])
    assert answer["result"]["entries"][0]["type"] == "dir"


def test_zstd_compression_is_a_clear_failure(call: Call, archives: Path) -> None:
    (archives / NAME).write_bytes(deb(MEMBERS, "xz", data_name="data.tar.zst"))
    answer = call("deb_meta", deb=str(archives / NAME), paths=["/etc/nginx/nginx.conf"])
    assert (answer["ok"], answer["code"]) == (False, "invalid")
    assert "data.tar.zst uses an unsupported compression" in answer["error"]


def test_a_file_without_the_ar_magic_is_refused(call: Call, archives: Path) -> None:
    (archives / NAME).write_bytes(ar([("debian-binary", b"2.0\n")], magic=b"!<arck>\n"))
    answer = call("deb_meta", deb=str(archives / NAME), paths=["/etc/x"])
    assert "is not a Debian package (no ar magic)" in answer["error"]


def test_a_damaged_member_header_or_data_is_refused(call: Call, archives: Path) -> None:
    good = deb(MEMBERS)
    (archives / NAME).write_bytes(good[:8] + good[8:66].replace(b"`\n", b"XX") + good[68:])
    assert "damaged ar member header" in call("deb_meta", deb=str(archives / NAME), paths=["/etc/x"])["error"]
    (archives / NAME).write_bytes(ar([("debian-binary", b"2.0\n"), ("data.tar.xz", b"not xz at all")]))
    assert "damaged data.tar.xz" in call("deb_meta", deb=str(archives / NAME), paths=["/etc/x"])["error"]


def test_dotdot_member_names_are_skipped(call: Call, archives: Path) -> None:
    path = write_deb(archives, NAME, [Member("./etc/../etc/passwd", mode=0o666), Member("./etc/ok")])
    answer = call("deb_meta", deb=str(path), paths=["/etc/passwd", "/etc/ok"])
    assert answer["result"]["absent"] == ["/etc/passwd"]


@pytest.mark.parametrize("where", ["/etc/" + NAME, "{archives}/sub/" + NAME, "{archives}/nginx.deb",
                                   "{archives}/../" + NAME, "relative.deb"])
def test_a_deb_outside_the_archives_or_badly_named_is_refused(call: Call, archives: Path, where: str) -> None:
    answer = call("deb_meta", deb=where.format(archives=archives), paths=["/etc/x"])
    assert (answer["ok"], answer["code"]) == (False, "invalid")


def test_a_symlinked_deb_is_refused(call: Call, archives: Path, tmp_path: Path) -> None:
    real = write_deb(tmp_path, NAME, MEMBERS)
    (archives / NAME).symlink_to(real)
    answer = call("deb_meta", deb=str(archives / NAME), paths=["/etc/nginx/nginx.conf"])
    assert answer["error"].endswith("it is a symlink")


def test_a_missing_deb_is_not_found(call: Call, archives: Path) -> None:
    answer = call("deb_meta", deb=f"{archives}/{NAME}", paths=["/etc/x"])
    assert answer["code"] == "not_found"


def test_too_many_members_or_paths_are_refused(call: Call, archives: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmrepair_agent, "MAX_DEB_MEMBERS", 3)
    path = write_deb(archives, NAME, MEMBERS)
    assert "more than 3 members" in call("deb_meta", deb=str(path), paths=["/etc/x"])["error"]
    many = [f"/etc/f{i}" for i in range(vmrepair_agent.MAX_DEB_PATHS + 1)]
    assert "paths must be 1 to" in call("deb_meta", deb=str(path), paths=many)["error"]
    assert "paths must be 1 to" in call("deb_meta", deb=str(path), paths=[])["error"]
    assert "not normalised" in call("deb_meta", deb=str(path), paths=["/etc/../x"])["error"]


def test_a_data_member_that_claims_more_than_the_file_holds_fails_cleanly(call: Call, archives: Path) -> None:
    data = data_tar(MEMBERS, "gz")
    blob = ar([("debian-binary", b"2.0\n"), ("data.tar.gz", data)])
    (archives / NAME).write_bytes(blob[: len(blob) - len(data) // 2])
    answer = call("deb_meta", deb=str(archives / NAME), paths=["/etc/nginx/nginx.conf"])
    assert answer["error"].endswith("ar member 'data.tar.gz' is cut short")


def test_the_client_hears_the_script_s_refusal_as_an_agent_error(agent: RemoteAgent, tmp_path: Path) -> None:
    real = write_deb(tmp_path, NAME, MEMBERS)
    with pytest.raises(AgentFailedError, match=r"deb must be a package file name_version_arch\.deb directly"
                       ) as caught:
        agent.deb_meta(str(real), ["/etc/nginx/nginx.conf"])
    assert caught.value.code == "invalid"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_deb_is_refused_never_a_crash(call: Call, archives: Path, data: st.DataObject) -> None:
    """Whatever bytes a hostile or broken cache holds, the answer is an answer (ok, or invalid)."""
    compression = data.draw(st.sampled_from(["xz", "gz", "bz2", ""]))
    blob = bytearray(deb(MEMBERS, compression))
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(blob)))
    (archives / NAME).write_bytes(bytes(blob[:cut]))
    answer = call("deb_meta", deb=str(archives / NAME), paths=["/etc/nginx/nginx.conf", "/usr/bin/helper"])
    assert answer["ok"] or answer["code"] == "invalid", answer


def test_a_deb_is_read_once_per_process_while_it_is_the_same_file(
        call: Call, archives: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several components ask about one .deb (systemd's) in a round: its data.tar is decompressed once.
    A file written again is another file: read again."""
    reads: list[str] = []
    real = vmrepair_agent.deb_members

    def counting(fd: int, deb: str, until: set[str] | None = None) -> tuple[dict[str, dict[str, Any]], bool]:
        reads.append(deb)
        return real(fd, deb, until)

    monkeypatch.setattr(vmrepair_agent, "deb_members", counting)
    monkeypatch.setattr(vmrepair_agent, "DEB_MEMBERS", {})
    path = write_deb(archives, NAME, MEMBERS)
    first = call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf"])
    second = call("deb_meta", deb=str(path), paths=["/usr/bin/helper", "/etc/nginx/gone"])
    assert [e["path"] for e in first["result"]["entries"]] == ["/etc/nginx/nginx.conf"]
    assert [e["path"] for e in second["result"]["entries"]] == ["/usr/bin/helper"]
    assert second["result"]["absent"] == ["/etc/nginx/gone"] and len(reads) == 1
    write_deb(archives, NAME, [*MEMBERS[:3], Member("./etc/nginx/nginx.conf", mode=0o600)])
    again = call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf"])
    assert again["result"]["entries"][0]["mode"] == 0o600 and len(reads) == 2


LISTED = ["/.", "/etc", "/etc/nginx", "/etc/nginx/nginx.conf", "/usr/bin/helper",
          "/etc/nginx/sites-enabled/default"]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[set[str] | None]:
    """The ``until`` of every data.tar read (None: read to the end)."""
    seen: list[set[str] | None] = []
    real = vmrepair_agent.deb_members

    def recording(fd: int, deb: str, until: set[str] | None = None) -> tuple[dict[str, dict[str, Any]], bool]:
        seen.append(until)
        return real(fd, deb, until)

    monkeypatch.setattr(vmrepair_agent, "deb_members", recording)
    return seen


def test_with_dpkg_s_list_reading_stops_at_the_last_shipped_path_asked_about(
        call: Call, archives: Path, reads: list[set[str] | None]) -> None:
    """What the package does not ship (by its .list) is absent without reading on for it, and the
    members past the last shipped path asked about are never decompressed."""
    dpkg_list(archives, "nginx-common.list", LISTED)
    path = write_deb(archives, NAME, [*MEMBERS[:4], *(Member(f"./usr/share/doc/f{i}") for i in range(50))])
    answer = call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf", "/etc/nginx/local.conf"])
    assert answer["ok"], answer
    assert [e["path"] for e in answer["result"]["entries"]] == ["/etc/nginx/nginx.conf"]
    assert answer["result"]["absent"] == ["/etc/nginx/local.conf"]
    assert reads == [{"/etc/nginx/nginx.conf"}]
    (found, complete), = vmrepair_agent.DEB_MEMBERS.values()
    assert not complete and sorted(found) == ["/", "/etc", "/etc/nginx", "/etc/nginx/nginx.conf"]
    # Nothing asked about is shipped: nothing to read at all.
    assert call("deb_meta", deb=str(path), paths=["/etc/nginx/local.conf"])["result"] == {
        "entries": [], "absent": ["/etc/nginx/local.conf"]}
    assert len(reads) == 1


def test_a_later_question_reads_on_and_keeps_what_the_first_read_found(
        call: Call, archives: Path, reads: list[set[str] | None]) -> None:
    dpkg_list(archives, "nginx-common:all.list", LISTED)   # a Multi-Arch: same package's name
    path = write_deb(archives, NAME, MEMBERS)
    call("deb_meta", deb=str(path), paths=["/etc/nginx"])
    second = call("deb_meta", deb=str(path), paths=["/etc/nginx", "/usr/bin/helper"])
    assert [e["path"] for e in second["result"]["entries"]] == ["/etc/nginx", "/usr/bin/helper"]
    third = call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf", "/usr/bin/helper"])
    assert third["result"]["absent"] == [] and reads == [{"/etc/nginx"}, {"/etc/nginx", "/usr/bin/helper"}]


def test_a_list_that_names_a_path_the_deb_lacks_means_the_whole_archive_is_read(
        call: Call, archives: Path, reads: list[set[str] | None]) -> None:
    dpkg_list(archives, "nginx-common.list", [*LISTED, "/etc/nginx/extra.conf"])
    path = write_deb(archives, NAME, MEMBERS)
    answer = call("deb_meta", deb=str(path), paths=["/etc/nginx/extra.conf", "/usr/bin/helper"])
    assert answer["result"]["absent"] == ["/etc/nginx/extra.conf"]
    # Read to the end once: the memo is complete, and no question reads it again.
    assert call("deb_meta", deb=str(path), paths=["/etc/nginx/nginx.conf"])["result"]["absent"] == []
    assert len(reads) == 1


def test_a_symlinked_or_missing_list_is_not_used(call: Call, archives: Path, tmp_path: Path,
                                                 reads: list[set[str] | None]) -> None:
    (tmp_path / "elsewhere.list").write_text("/etc/nginx/nginx.conf\n")
    (archives.parent / "info" / "nginx-common.list").symlink_to(tmp_path / "elsewhere.list")
    path = write_deb(archives, NAME, MEMBERS)
    assert call("deb_meta", deb=str(path), paths=["/usr/bin/helper"])["result"]["absent"] == []
    assert reads == [None]
