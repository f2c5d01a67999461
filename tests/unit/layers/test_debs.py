"""Obtaining .debs for a host layer: the target's apt cache (verified with the real dpkg-deb) first,
a mirror (a real private apt over a file:// repository) for the rest."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config.settings import LayerSettings
from orchestrator.errors import LayerError
from orchestrator.facts.model import Package
from orchestrator.layers import debs
from orchestrator.layers.aptroot import LISTS_MAX_AGE_S
from orchestrator.layers.debname import deb_file_name, parse_deb_file_name
from orchestrator.layers.targetcache import ARCHIVES_DIR, MAX_LISTING, parse_listing, read_all_md5sums
from orchestrator.transport.fake import FakeTransport
from tests.unit.layers.conftest import (
    SUITE,
    Deb,
    FakeTarget,
    RecordingLocal,
    Repo,
    listing,
    needs_apt,
    needs_dpkg_deb,
    pkg,
)

BuildDeb = Callable[..., Deb]


# --- file names ---------------------------------------------------------------------------------------

def test_epoch_is_escaped_in_file_names_and_back() -> None:
    assert deb_file_name(pkg(version="1:2.0-1")) == "hello_1%3a2.0-1_amd64.deb"
    assert parse_deb_file_name("hello_1%3a2.0-1_amd64.deb") == ("hello", "1:2.0-1", "amd64")
    assert deb_file_name(pkg("libc6", "2.36-9+deb12u9", "amd64")) == "libc6_2.36-9+deb12u9_amd64.deb"


@pytest.mark.parametrize("package", [pkg(version="1.0/../../etc"), pkg("../x"), pkg(arch="amd64\n"),
                                     pkg(version="2.0-1\n"), pkg("Hello"), pkg(version="1_2")])
def test_no_file_name_from_fields_outside_debian_syntax(package: Package) -> None:
    assert deb_file_name(package) is None


@pytest.mark.parametrize("name", ["../x.deb", "hello_2.0-1_amd64.deb/x", "hello_2.0-1_amd64.deb\n",
                                  "hello_1:2.0-1_amd64.deb", "hello_2.0-1_amd64", ".hello_2.0-1_amd64.deb",
                                  "hello_2.0_1_amd64.deb", "/var/cache/apt/archives/hello_2.0-1_amd64.deb"])
def test_hostile_file_names_do_not_parse(name: str) -> None:
    assert parse_deb_file_name(name) is None


# --- the target's listing -------------------------------------------------------------------------------

def test_listing_keeps_only_archive_names_and_drops_a_cut_record() -> None:
    out = listing("hello_2.0-1_amd64.deb", "../x.deb", b"evil\nhello_2.0-1_amd64.deb", "a\tb_1_amd64.deb",
                  b"caf\xc3\xa9_1_amd64.deb") + b"cut_1.0_amd64.deb\t12"
    parsed = parse_listing(out)
    assert parsed.sizes == {"hello_2.0-1_amd64.deb": 1000}
    assert parsed.rejected == 4
    assert parsed.truncated


def test_listing_count_is_capped() -> None:
    parsed = parse_listing(listing(*(f"junk{i}_1.0_amd64.deb" for i in range(MAX_LISTING + 5))))
    assert len(parsed.sizes) == MAX_LISTING
    assert parsed.truncated


# --- the target's apt cache ------------------------------------------------------------------------------

@needs_dpkg_deb
def test_matching_cached_deb_is_used(build_deb: BuildDeb, target: FakeTarget, local: RecordingLocal,
                                     tmp_path: Path) -> None:
    deb = build_deb(pkg())
    # dpkg keeps the member verbatim, but sets of lines are compared: order and blank lines do not count.
    target.cache(deb, record=b"\n" + deb.md5sums)
    fetched = debs.from_target_cache(target, [pkg()], tmp_path / "dest", local=local)
    assert fetched.notes == ()
    [got] = fetched.debs
    assert got.source == "target-cache"
    assert got.package == pkg()
    assert got.path == tmp_path / "dest" / "hello_2.0-1_amd64.deb"
    assert got.path.read_bytes() == deb.data
    assert got.sha256 == deb.sha256
    # Read-only on the target: one listing, one tar of the package database records, one copy.
    assert [c.argv[:2] for c in target.calls] == [("find", ARCHIVES_DIR), ("tar", "-c")]
    assert target.fetched == [f"{ARCHIVES_DIR}/hello_2.0-1_amd64.deb"]


@needs_dpkg_deb
def test_multiarch_same_record_name_is_found(build_deb: BuildDeb, target: FakeTarget, local: RecordingLocal,
                                             tmp_path: Path) -> None:
    libfoo = pkg("libfoo1", "3.1-2")
    target.cache(build_deb(libfoo), record_name="libfoo1:amd64")
    assert [d.source for d in debs.from_target_cache(target, [libfoo], tmp_path, local=local).debs] == [
        "target-cache"]


@needs_dpkg_deb
def test_epoch_version_is_found_under_its_escaped_name(build_deb: BuildDeb, target: FakeTarget,
                                                       local: RecordingLocal, tmp_path: Path) -> None:
    wanted = pkg(version="1:2.0-1")
    target.cache(build_deb(wanted))
    [got] = debs.from_target_cache(target, [wanted], tmp_path, local=local).debs
    assert got.path.name == "hello_1%3a2.0-1_amd64.deb"
    assert f"{ARCHIVES_DIR}/hello_1%3a2.0-1_amd64.deb" in target.fetched


@needs_dpkg_deb
def test_md5sums_mismatch_is_not_used(build_deb: BuildDeb, target: FakeTarget, local: RecordingLocal,
                                      tmp_path: Path) -> None:
    deb = build_deb(pkg())
    target.cache(deb, record=b"00000000000000000000000000000000  usr/share/hello/greeting\n")
    fetched = debs.from_target_cache(target, [pkg()], tmp_path / "dest", local=local)
    assert fetched.debs == ()
    assert fetched.notes == ("hello 2.0-1: the target's cached .deb does not match its package database "
                             "(md5sums differ); not used",)
    assert list((tmp_path / "dest").iterdir()) == []  # nothing unverified is left in dest


@needs_dpkg_deb
def test_md5sums_on_one_side_only_is_a_mismatch(build_deb: BuildDeb, target: FakeTarget,
                                                local: RecordingLocal, tmp_path: Path) -> None:
    deb = build_deb(pkg(), with_md5sums=False)
    target.cache(deb, record=b"764efa883dda1e11db47671c4a3bbd9e  usr/share/hello/greeting\n")
    assert debs.from_target_cache(target, [pkg()], tmp_path, local=local).debs == ()


@needs_dpkg_deb
def test_no_md5sums_on_both_sides_is_fine(build_deb: BuildDeb, target: FakeTarget, local: RecordingLocal,
                                          tmp_path: Path) -> None:
    target.cache(build_deb(pkg(), with_md5sums=False))
    assert len(debs.from_target_cache(target, [pkg()], tmp_path, local=local).debs) == 1


@needs_dpkg_deb
@pytest.mark.parametrize(("control", "says"), [({"control_version": "2.0-2"}, "hello 2.0-2 amd64"),
                                                ({"control_name": "evil"}, "evil 2.0-1 amd64")])
def test_control_field_mismatch_is_not_used(build_deb: BuildDeb, target: FakeTarget, local: RecordingLocal,
                                            tmp_path: Path, *, control: dict[str, str], says: str) -> None:
    target.cache(build_deb(pkg(), **control), file_name="hello_2.0-1_amd64.deb")
    fetched = debs.from_target_cache(target, [pkg()], tmp_path, local=local)
    assert fetched.debs == ()
    assert fetched.notes == (f"hello 2.0-1: the target's cached .deb is another package: its control fields "
                             f"say {says}; not used",)


@needs_dpkg_deb
def test_unreadable_deb_is_not_used(target: FakeTarget, local: RecordingLocal, tmp_path: Path) -> None:
    target.files[f"{ARCHIVES_DIR}/hello_2.0-1_amd64.deb"] = b"!<arch>\nnot really a deb"
    target.listing_output = listing("hello_2.0-1_amd64.deb")
    [note] = debs.from_target_cache(target, [pkg()], tmp_path, local=local).notes
    assert note.startswith("hello 2.0-1: the target's cached .deb is not a readable Debian package (")


def test_hostile_listing_is_ignored_and_nothing_else_is_opened(target: FakeTarget, tmp_path: Path) -> None:
    target.listing_output = listing("../hello_2.0-1_amd64.deb", b"x\nhello_2.0-1_amd64.deb",
                                    "hello_2.0-1_amd64.deb/../../../etc/shadow", "/etc/shadow",
                                    *(f"../junk{i}.deb" for i in range(10_000)))
    fetched = debs.from_target_cache(target, [pkg()], tmp_path, local=FakeTransport())
    assert fetched.debs == ()
    assert target.fetched == []
    assert fetched.notes == ("the target's apt cache listing had 10000 entries that are not Debian archive "
                             "file names; ignored",
                             "the target's apt cache listing was cut after 10000 entries; packages past the "
                             "cut are fetched from the mirror")


def test_wanted_file_past_the_listing_cap_is_not_fetched(target: FakeTarget, tmp_path: Path) -> None:
    junk = (f"junk{i}_1.0_amd64.deb" for i in range(10_000))
    target.listing_output = listing(*junk, "hello_2.0-1_amd64.deb")
    fetched = debs.from_target_cache(target, [pkg()], tmp_path, local=FakeTransport())
    assert fetched.debs == ()
    assert target.fetched == []
    assert fetched.notes == ("the target's apt cache listing was cut after 10000 entries; packages past the "
                             "cut are fetched from the mirror",)


def test_unlistable_cache_is_a_note(target: FakeTarget, tmp_path: Path) -> None:
    target.listing_exit = 1
    fetched = debs.from_target_cache(target, [pkg()], tmp_path, local=FakeTransport())
    assert fetched == debs.Fetched((), ("the target's apt cache could not be listed (find: gone); nothing "
                                        "taken from it",))


@needs_dpkg_deb
def test_cached_deb_over_the_budget_is_not_copied(build_deb: BuildDeb, target: FakeTarget,
                                                  local: RecordingLocal, tmp_path: Path) -> None:
    target.cache(build_deb(pkg()))
    fetched = debs.from_target_cache(target, [pkg()], tmp_path, local=local, max_bytes=10)
    assert fetched.debs == ()
    assert target.fetched == []
    assert "more than the 10 bytes left of the download budget; not used" in fetched.notes[0]


# --- the mirror -----------------------------------------------------------------------------------------

def _from_mirror(repo: Repo, local: RecordingLocal, tmp_path: Path, wanted: list[Package], *,
                 dest: str = "dest", max_bytes: int = 10**9, **overrides: object) -> debs.Fetched:
    kwargs: dict[str, object] = {"mirror": repo.url, "security_mirror": repo.url, "suite": SUITE,
                                 "arch": "amd64", "cache_dir": tmp_path / "cache", "max_bytes": max_bytes,
                                 "timeout": 120, "_allow_unsigned_for_tests": True} | overrides
    return debs.from_mirror(wanted, tmp_path / dest, local=local, **kwargs)  # type: ignore[arg-type]


@needs_apt
def test_mirror_download_works_and_is_cached(build_deb: BuildDeb, repo: Repo, local: RecordingLocal,
                                             tmp_path: Path) -> None:
    hello, doc = build_deb(pkg(version="1:2.0-1")), build_deb(pkg("hello-doc", arch="all"))
    repo.add(hello, f"{SUITE}-security")
    repo.add(doc)
    fetched = _from_mirror(repo, local, tmp_path, [hello.package, doc.package])
    assert fetched.notes == ()
    assert [(d.package, d.source, d.sha256, d.path.name) for d in fetched.debs] == [
        (hello.package, "mirror", hello.sha256, "hello_1%3a2.0-1_amd64.deb"),
        (doc.package, "mirror", doc.sha256, "hello-doc_2.0-1_all.deb")]
    assert all(d.path.parent == tmp_path / "dest" for d in fetched.debs)
    assert [hashlib.sha256(d.path.read_bytes()).hexdigest() for d in fetched.debs] == [hello.sha256,
                                                                                       doc.sha256]
    assert local.apt_commands() == ["update", "--print-uris", "download"]

    local.argvs.clear()
    again = _from_mirror(repo, local, tmp_path, [hello.package, doc.package], dest="dest2")
    assert [d.sha256 for d in again.debs] == [hello.sha256, doc.sha256]
    assert local.apt_commands() == ["--print-uris"]  # lists younger than 6 h, files from the cache
    assert (tmp_path / "dest2" / "hello-doc_2.0-1_all.deb").read_bytes() == doc.data


@needs_apt
def test_old_lists_are_updated_and_a_changed_cache_file_is_downloaded_again(
        build_deb: BuildDeb, repo: Repo, local: RecordingLocal, tmp_path: Path) -> None:
    hello = build_deb(pkg())
    repo.add(hello)
    _from_mirror(repo, local, tmp_path, [hello.package])
    stamp = tmp_path / "cache" / f"apt-{SUITE}-amd64" / "updated"
    old = time.time() - LISTS_MAX_AGE_S - 60
    os.utime(stamp, (old, old))
    (tmp_path / "cache" / "debs" / "hello_2.0-1_amd64.deb").write_bytes(b"changed behind our back")
    local.argvs.clear()
    [got] = _from_mirror(repo, local, tmp_path, [hello.package], dest="dest2").debs
    assert local.apt_commands() == ["update", "--print-uris", "download"]
    assert got.path.read_bytes() == hello.data


@needs_apt
def test_missing_version_names_package_and_what_the_mirror_has(
        build_deb: BuildDeb, repo: Repo, local: RecordingLocal, tmp_path: Path) -> None:
    repo.add(build_deb(pkg(version="2.0-2")))
    with pytest.raises(LayerError) as caught:
        _from_mirror(repo, local, tmp_path, [pkg(), pkg("gone", "1.0")])
    message = caught.value.message
    assert "does not serve 2 package version(s) the target has" in message
    assert "hello 2.0-1 (amd64): the mirror serves 2.0-2" in message
    assert "gone 1.0 (amd64): the mirror does not serve it" in message
    assert caught.value.step == "fetch-mirror"
    assert caught.value.remedy is not None and "snapshot.debian.org" in caught.value.remedy
    assert not (tmp_path / "dest").exists()


@needs_apt
def test_reused_lists_are_refreshed_once_for_a_version_they_lack(
        build_deb: BuildDeb, repo: Repo, local: RecordingLocal, tmp_path: Path) -> None:
    repo.add(build_deb(pkg()))
    _from_mirror(repo, local, tmp_path, [pkg()])
    newer = build_deb(pkg(version="2.0-1+deb12u1"))
    repo.add(newer, f"{SUITE}-security")  # published after our lists were updated
    local.argvs.clear()
    [got] = _from_mirror(repo, local, tmp_path, [newer.package]).debs
    assert got.sha256 == newer.sha256
    assert local.apt_commands() == ["--print-uris", "update", "--print-uris", "download"]


@needs_apt
def test_arch_all_is_not_taken_for_a_native_package_of_that_version(build_deb: BuildDeb, repo: Repo,
                                                                      local: RecordingLocal,
                                                                      tmp_path: Path) -> None:
    # apt resolves hello:all=V to the native hello=V: the file name apt reports tells them apart.
    repo.add(build_deb(pkg()))
    with pytest.raises(LayerError, match=r"hello 2.0-1 \(all\)"):
        _from_mirror(repo, local, tmp_path, [pkg(arch="all")])


@needs_apt
def test_over_max_bytes_is_refused_before_downloading(build_deb: BuildDeb, repo: Repo, local: RecordingLocal,
                                                      tmp_path: Path) -> None:
    hello = build_deb(pkg())
    repo.add(hello)
    with pytest.raises(LayerError) as caught:
        _from_mirror(repo, local, tmp_path, [hello.package], max_bytes=100)
    assert caught.value.message == (f"the 1 .debs to fetch from {repo.url} total {len(hello.data)} bytes, "
                                    "more than the 100 bytes allowed")
    assert "layers.max_download_bytes" in (caught.value.remedy or "")
    assert "download" not in local.apt_commands()


@needs_apt
def test_unsigned_repository_is_refused_without_the_test_switch(
        build_deb: BuildDeb, repo: Repo, local: RecordingLocal, tmp_path: Path) -> None:
    repo.add(build_deb(pkg()))
    with pytest.raises(LayerError) as caught:
        _from_mirror(repo, local, tmp_path, [pkg()], _allow_unsigned_for_tests=False)
    assert caught.value.message.startswith(f"apt-get update from {repo.url} (suite {SUITE}) failed: E: ")
    assert "is not signed" in caught.value.message
    assert "layers.mirror" in (caught.value.remedy or "")


@needs_apt
def test_file_that_differs_from_the_index_is_refused(build_deb: BuildDeb, repo: Repo, local: RecordingLocal,
                                                     tmp_path: Path) -> None:
    hello = build_deb(pkg())
    repo.add(hello).write_bytes(hello.data[:-1] + b"X")
    with pytest.raises(LayerError, match=r"apt-get download from .* failed: E: Failed to fetch"):
        _from_mirror(repo, local, tmp_path, [hello.package])
    assert not (tmp_path / "cache" / "debs" / "hello_2.0-1_amd64.deb").exists()


@pytest.mark.parametrize(("field", "value"), [
    ("suite", "bookworm main"), ("suite", "../etc"), ("suite", "Bookworm"), ("suite", "bookworm\n"),
    ("suite", "b"), ("mirror", "ftp://deb.debian.org/debian"), ("mirror", "http://a b/debian"),
    ("mirror", "http://deb.debian.org/debian\n"), ("mirror", "-o APT::X=1"), ("mirror", "http://"),
    ("security_mirror", "deb.debian.org/debian-security"),
])
def test_invalid_suite_or_mirror_is_refused_before_anything_runs(tmp_path: Path, field: str,
                                                                 value: str) -> None:
    local = FakeTransport()
    kwargs = {"mirror": "http://deb.debian.org/debian", "suite": SUITE,
              "security_mirror": "http://security.debian.org/debian-security"} | {field: value}
    with pytest.raises(LayerError) as caught:
        debs.from_mirror([pkg()], tmp_path / "dest", local=local, arch="amd64", cache_dir=tmp_path / "cache",
                         max_bytes=10**9, **kwargs)
    assert caught.value.step == "fetch-mirror"
    assert local.calls == []
    assert not (tmp_path / "cache").exists()


def test_invalid_package_is_refused_by_the_mirror(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"not Debian syntax: '\.\./x 1\.0'"):
        debs.from_mirror([pkg("../x", "1.0")], tmp_path, local=FakeTransport(),
                         mirror="http://deb.debian.org/debian", suite=SUITE, arch="amd64",
                         security_mirror="http://security.debian.org/debian-security",
                         cache_dir=tmp_path / "cache", max_bytes=10**9)


# --- both -----------------------------------------------------------------------------------------------

@needs_apt
def test_fetch_takes_the_cache_first_and_the_rest_from_the_mirror(build_deb: BuildDeb, repo: Repo,
                                                                  target: FakeTarget, local: RecordingLocal,
                                                                  tmp_path: Path) -> None:
    cached, stale, absent = build_deb(pkg("cached", "1.0")), build_deb(pkg("stale", "1.0")), build_deb(
        pkg("absent", "1.0"))
    target.cache(cached)
    target.cache(stale, record=b"00000000000000000000000000000000  usr/share/stale/greeting\n")
    for deb in (stale, absent):
        repo.add(deb)
    wanted = [absent.package, stale.package, cached.package]
    settings = LayerSettings(mirror=repo.url, security_mirror=repo.url)
    fetched = debs.fetch(target, wanted, tmp_path / "dest", local=local, settings=settings,
                         default_mirror="http://unused.invalid/debian", suite=SUITE, arch="amd64",
                         cache_dir=tmp_path / "cache", _allow_unsigned_for_tests=True)
    assert [(d.package.name, d.source) for d in fetched.debs] == [("absent", "mirror"), ("stale", "mirror"),
                                                                  ("cached", "target-cache")]
    assert fetched.notes == ("stale 1.0: the target's cached .deb does not match its package database "
                             "(md5sums differ); downloaded from the mirror instead",)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == [
        "absent_1.0_amd64.deb", "cached_1.0_amd64.deb", "stale_1.0_amd64.deb"]


def test_fetch_checks_the_configuration_before_touching_the_target(target: FakeTarget,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"layers\.mirror 'ftp://x' is not"):
        debs.fetch(target, [pkg()], tmp_path, local=FakeTransport(), settings=LayerSettings(mirror="ftp://x"),
                   default_mirror="http://deb.debian.org/debian", suite=SUITE, arch="amd64",
                   cache_dir=tmp_path / "cache")
    assert target.calls == []


@needs_apt
def test_an_unreachable_mirror_is_a_clear_error_naming_it(repo: Repo, local: RecordingLocal,
                                                        tmp_path: Path) -> None:
    gone = f"file://{tmp_path}/no-such-mirror"
    with pytest.raises(LayerError) as caught:
        _from_mirror(repo, local, tmp_path, [pkg()], mirror=gone, security_mirror=gone)
    assert caught.value.message.startswith(f"apt-get update from {gone} (suite {SUITE}) failed")
    assert "layers.mirror" in (caught.value.remedy or "")
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


def _tar(members: dict[str, bytes], *, link: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(info)
    return out.getvalue()


def test_batch_records_take_only_what_was_asked_from_a_hostile_archive() -> None:
    hello = pkg()
    archive = _tar({"hello.md5sums": b"abc  usr/bin/hello\n", "../../etc/passwd": b"root\n",
                    "other.md5sums": b"x  y\n"}, link="hello:amd64.md5sums")
    target = FakeTransport(lambda argv, stdin: (0, archive, b""))
    records = read_all_md5sums(target, [hello])
    assert records == {hello: frozenset({b"abc  usr/bin/hello"})}   # the symlink member is not a record


def test_batch_records_that_cannot_be_had_fall_back_to_one_read_per_package() -> None:
    assert read_all_md5sums(FakeTransport(lambda argv, stdin: (2, b"", b"tar: error\n")), [pkg()]) is None
    assert read_all_md5sums(FakeTransport(lambda argv, stdin: (0, b"not a tar", b"")), [pkg()]) is None
