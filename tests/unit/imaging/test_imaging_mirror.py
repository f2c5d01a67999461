"""Finding the host's Debian mirror in a fake /etc/apt."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ImageBuildError
from orchestrator.imaging.mirror import host_mirror

DEB822 = """\
# Modernized from /etc/apt/sources.list
Types: deb deb-src
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src-only.example/debian
Suites: bookworm

Types: deb
URIs: https://deb.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 xyz
 -----END PGP PUBLIC KEY BLOCK-----
"""


@pytest.fixture
def apt_dir(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_deb822_sources_skip_security_and_source_only_entries(apt_dir: Path) -> None:
    (apt_dir / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert host_mirror("bookworm", apt_dir=apt_dir) == "https://deb.example.org/debian"


def test_legacy_sources_list(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text(
        "# comment\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://legacy.example/debian bookworm main\n"
    )
    assert host_mirror("bookworm", apt_dir=apt_dir) == "http://legacy.example/debian"


def test_legacy_list_in_sources_list_d(apt_dir: Path) -> None:
    (apt_dir / "sources.list.d" / "extra.list").write_text(
        "deb http://extra.example/debian bookworm main\n"
    )
    assert host_mirror("bookworm", apt_dir=apt_dir) == "http://extra.example/debian"


def test_suite_must_match(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text("deb http://old.example/debian bullseye main\n")
    (apt_dir / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert host_mirror("bookworm", apt_dir=apt_dir) == "https://deb.example.org/debian"
    assert host_mirror("bullseye", apt_dir=apt_dir) == "http://old.example/debian"


def test_non_http_uris_are_skipped(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text(
        "deb file:///srv/local bookworm main\ndeb cdrom:[Debian]/ bookworm main\n"
        "deb http://net.example/debian bookworm main\n"
    )
    assert host_mirror("bookworm", apt_dir=apt_dir) == "http://net.example/debian"


def test_another_release_comes_from_the_hosts_debian_mirror(apt_dir: Path) -> None:
    """A target on bullseye, a host on bookworm: the same mirror serves both under dists/."""
    (apt_dir / "sources.list").write_text(
        "deb http://deb.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n")
    assert host_mirror("bullseye", apt_dir=apt_dir) == "http://deb.example/debian"


def test_no_match_names_the_config_key(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text("deb http://old.example/ubuntu jammy main\n")
    with pytest.raises(ImageBuildError) as info:
        host_mirror("bookworm", apt_dir=apt_dir)
    assert info.value.message == (
        f"no Debian mirror for suite 'bookworm' in the host's apt sources ({apt_dir})"
    )
    assert info.value.step == "preflight"
    assert info.value.remedy is not None
    assert "mirror:" in info.value.remedy


def test_empty_apt_dir(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="no Debian mirror"):
        host_mirror("bookworm", apt_dir=tmp_path / "nothing")
