"""Real .deb files and a real (unsigned, file://) Debian repository in a temporary directory, so the
dpkg-deb checks and the private apt of :mod:`orchestrator.layers` run for real; the target stays a
:class:`FakeTransport` whose apt cache and package database are a dict."""

from __future__ import annotations

import email.utils
import hashlib
import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.facts.model import Package
from orchestrator.layers.targetcache import ARCHIVES_DIR, DPKG_INFO_DIR, LIST_ARGV
from orchestrator.transport.base import DEFAULT_MAX_OUTPUT, CommandResult, OutputSink, Transport
from orchestrator.transport.fake import FakeTransport
from orchestrator.transport.local import LocalTransport

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                               reason="apt-get or dpkg-deb is not installed")
SUITE = "bookworm"


@dataclass(frozen=True)
class Deb:
    package: Package
    path: Path
    md5sums: bytes          # the DEBIAN/md5sums member, b"" if the deb has none

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def pkg(name: str = "hello", version: str = "2.0-1", arch: str = "amd64") -> Package:
    return Package(name, version, arch, "ii")


@pytest.fixture
def build_deb(tmp_path: Path) -> Callable[..., Deb]:
    """``build_deb(package, *, control_version=..., with_md5sums=True, content=b"...")``: a real .deb."""
    counter = iter(range(1_000_000))

    def factory(package: Package, *, control_name: str | None = None, control_version: str | None = None,
                with_md5sums: bool = True, content: bytes = b"hello\n") -> Deb:
        tree = tmp_path / f"debtree-{next(counter)}"
        data_file = tree / "usr" / "share" / package.name / "greeting"
        data_file.parent.mkdir(parents=True)
        data_file.write_bytes(content)
        (tree / "DEBIAN").mkdir()
        control = (f"Package: {control_name or package.name}\nVersion: {control_version or package.version}\n"
                   f"Architecture: {package.arch}\nMaintainer: Test <test@example.org>\n"
                   "Description: a test package\n")
        (tree / "DEBIAN" / "control").write_text(control)
        md5sums = b""
        if with_md5sums:
            md5sums = (f"{hashlib.md5(content).hexdigest()}  usr/share/{package.name}/greeting\n"  # noqa: S324
                       .encode())
            (tree / "DEBIAN" / "md5sums").write_bytes(md5sums)
        out = tmp_path / f"built-{next(counter)}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
                       check=True, capture_output=True)
        return Deb(package, out, md5sums)

    return factory


def listing(*names: str | bytes, size: int = 1000) -> bytes:
    """What the target's ``find -printf '%f\\t%s\\0'`` prints for these file names."""
    return b"".join((n.encode() if isinstance(n, str) else n) + b"\t" + str(size).encode() + b"\0"
                    for n in names)


class FakeTarget(FakeTransport):
    """A target with an apt cache and a package database; records every file it is asked for."""

    def __init__(self) -> None:
        self.listing_output: bytes = b""
        self.listing_exit = 0
        self.fetched: list[str] = []
        super().__init__(self._answer, host="target")

    def cache(self, deb: Deb, *, file_name: str | None = None, record: bytes | None = None,
              record_name: str | None = None, listed: bool = True) -> None:
        """Put ``deb`` into the cache (and its md5sums into the database, ``record`` overriding)."""
        p = deb.package
        name = file_name or f"{p.name}_{p.version.replace(':', '%3a')}_{p.arch}.deb"
        self.files[f"{ARCHIVES_DIR}/{name}"] = deb.data
        if listed:
            self.listing_output += listing(name, size=len(deb.data))
        record = deb.md5sums if record is None else record
        if record:
            self.files[f"{DPKG_INFO_DIR}/{record_name or deb.package.name}.md5sums"] = record

    def _answer(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv == LIST_ARGV:
            return self.listing_exit, self.listing_output, b"" if not self.listing_exit else b"find: gone\n"
        if argv[:2] == ("tar", "-c") and DPKG_INFO_DIR in argv:
            # GNU tar with --ignore-failed-read: the records that exist, exit 0.
            names = argv[argv.index("--") + 1:]
            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w") as tar:
                for name in names:
                    data = self.files.get(f"{DPKG_INFO_DIR}/{name}")
                    if data is not None:
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
            return 0, out.getvalue(), b""
        return 127, b"", f"unexpected command {argv!r}".encode()

    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        self.fetched.append(remote)
        super().get_file(remote, local, max_bytes=max_bytes)


class RecordingLocal(Transport):
    """The real local transport, remembering each argv so tests can tell whether apt was asked again."""

    host = "local"

    def __init__(self) -> None:
        self.inner = LocalTransport(command_timeout=120)
        self.argvs: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None, stdin: bytes | None = None,
            on_output: OutputSink | None = None, max_output: int = DEFAULT_MAX_OUTPUT) -> CommandResult:
        self.argvs.append(tuple(argv))
        return self.inner.run(argv, timeout=timeout, stdin=stdin, on_output=on_output, max_output=max_output)

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        self.inner.put_file(local, remote, mode=mode)

    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        self.inner.get_file(remote, local, max_bytes=max_bytes)

    def apt_commands(self) -> list[str]:
        """``update``, ``--print-uris``, ``download``, ``madison`` in the order apt was run."""
        found = []
        for argv in self.argvs:
            if "apt-get" in argv or "apt-cache" in argv:
                found.append(next(a for a in ("--print-uris", "update", "download", "madison") if a in argv))
        return found


@dataclass
class Repo:
    """A file:// Debian repository with SUITE, SUITE-updates and SUITE-security (main, amd64)."""

    root: Path
    packages: dict[str, list[Deb]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def add(self, deb: Deb, suite: str = SUITE) -> Path:
        self.packages.setdefault(suite, []).append(deb)
        self.publish()
        return self.pool_path(deb)

    def pool_path(self, deb: Deb) -> Path:
        p = deb.package
        return self.root / "pool" / "main" / p.name / f"{p.name}_{p.version.split(':')[-1]}_{p.arch}.deb"

    def publish(self) -> None:
        """Write pool files, Packages and Release of every suite (the archive's own layout)."""
        for suite in (SUITE, f"{SUITE}-updates", f"{SUITE}-security"):
            stanzas = []
            for deb in self.packages.get(suite, []):
                target = self.pool_path(deb)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    shutil.copyfile(deb.path, target)
                p = deb.package
                stanzas.append(f"Package: {p.name}\nVersion: {p.version}\nArchitecture: {p.arch}\n"
                               f"Maintainer: Test <test@example.org>\n"
                               f"Filename: {target.relative_to(self.root)}\nSize: {len(deb.data)}\n"
                               f"SHA256: {deb.sha256}\nDescription: a test package\n")
            packages = "\n".join(stanzas).encode()
            dist = self.root / "dists" / suite
            index = dist / "main" / "binary-amd64" / "Packages"
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_bytes(packages)
            (dist / "Release").write_text(
                f"Suite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: main\n"
                f"Date: {email.utils.formatdate(usegmt=True)}\nSHA256:\n"
                f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages\n")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repository = Repo(tmp_path / "repo")
    repository.publish()
    return repository


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
def local() -> RecordingLocal:
    return RecordingLocal()
