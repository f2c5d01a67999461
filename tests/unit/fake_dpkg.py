"""dpkg on a fake host: a :class:`FakeTransport` handler that answers the package commands of
:mod:`orchestrator.dpkg` against a :class:`~tests.unit.fake_agent.FakeAgent`'s files.

A package (:class:`FakePackage`) has a name, version, architecture, dpkg status and its pristine files
(path -> content; ``conffiles`` among them). ``dpkg -i`` of an uploaded ``.deb`` (any bytes that a
package's ``deb`` equals) writes every pristine file back, except conffiles that exist (``--force-confold``
keeps them; a deleted one stays deleted), and marks the package ``ii``. ``dpkg --verify`` compares the
host's files with the pristine ones. Faults: ``install_failures`` (the next dpkg -i exits 1 and leaves
the package ``iF``), ``locked`` (that many dpkg -i answer the lock error), ``on_install`` (called before
the files are written: a test's crash point).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator import dpkg
from orchestrator.transport.fake import FakeTransport
from tests.unit.fake_agent import FakeAgent

Answer = tuple[int, bytes, bytes]


@dataclass
class FakePackage:
    name: str
    version: str
    arch: str
    status: str = "ii "
    files: dict[str, bytes] = field(default_factory=dict)
    conffiles: frozenset[str] = frozenset()

    @property
    def deb(self) -> bytes:
        return f"!<arch>\nfake deb of {self.name} {self.version} {self.arch}\n".encode()

    @property
    def deb_sha256(self) -> str:
        return hashlib.sha256(self.deb).hexdigest()


@dataclass
class FakeDpkgHost:
    agent: FakeAgent
    packages: list[FakePackage]
    host: str = "target"
    install_failures: int = 0
    locked: int = 0
    configure_fails: bool = False
    on_install: Callable[[FakePackage], None] | None = None
    installs: list[str] = field(default_factory=list)
    transport: FakeTransport = field(init=False)

    def __post_init__(self) -> None:
        self.transport = FakeTransport(self.handle, host=self.host)

    def package(self, name: str) -> FakePackage:
        return next(p for p in self.packages if p.name == name)

    def _by_spec(self, spec: str) -> list[FakePackage]:
        name, _, arch = spec.partition(":")
        return [p for p in self.packages if p.name == name and (not arch or p.arch == arch)]

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> Answer:  # noqa: PLR0911, PLR0912 - one case per command
        files = self.transport.files
        match argv:
            case ("dpkg-query", "-W", "-f", dpkg.STATUS_FORMAT, "--", name):
                lines = [f"{p.name}:{p.arch}\t{p.arch}\t{p.version}\t{p.status}\n"
                         for p in self.packages if p.name == name]
                return (0 if lines else 1), "".join(lines).encode(), b""
            case ("dpkg-query", "-L", "--", spec):
                found = self._by_spec(spec)
                return (0, "".join(f"{path}\n" for p in found for path in p.files).encode(), b"") \
                    if found else (1, b"", b"not installed\n")
            case ("dpkg-query", "-W", "-f", "${Conffiles}\n", "--", spec):
                listed = "".join(f" {c} 0123\n" for p in self._by_spec(spec) for c in p.conffiles)
                return 0, listed.encode(), b""
            case ("dpkg", "--verify", spec):
                return self._verify(self._by_spec(spec))
            case ("dpkg", "--audit"):
                pending = [p.name for p in self.packages if p.status[1] in dpkg.CONFIGURABLE]
                return 0, "".join(f" {n}  unconfigured\n" for n in pending).encode(), b""
            case ("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--force-confold", "-i", path):
                return self._install(files.get(path, b""))
            case ("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", which):
                if self.configure_fails:
                    return 1, b"", b"dpkg: error processing package (--configure)\n"
                for p in self.packages:
                    if which in ("-a", p.name) and p.status[1] in dpkg.CONFIGURABLE:
                        p.status = "ii "
                return 0, b"", b""
            case ("sha256sum", "--", path):
                if path not in files:
                    return 1, b"", b"No such file\n"
                return 0, f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n".encode(), b""
            case ("rm", "-f", "--", path):
                files.pop(path, None)
                return 0, b"", b""
            case ("test", "-e", path):
                return (0 if path in self.agent.fs else 1), b"", b""
            case ("sh", "-c", script, "sh", dpkg.POLICY_RC, *_) if "set -C" in script:
                if dpkg.POLICY_RC in self.agent.fs:
                    return 1, b"", b"cannot overwrite existing file\n"
                self.agent.file(dpkg.POLICY_RC, stdin or b"", 0o755)
                return 0, b"", b""
            case ("sh", "-c", script, "sh", dpkg.POLICY_RC, mark) if "grep" in script:
                node = self.agent.fs.get(dpkg.POLICY_RC)
                if node is not None and mark.encode() in node.data.splitlines():
                    del self.agent.fs[dpkg.POLICY_RC]
                return 0, b"", b""
        return 0, b"", b""

    def _verify(self, found: list[FakePackage]) -> Answer:
        lines = []
        for p in found:
            for path, data in sorted(p.files.items()):
                attr = "c" if path in p.conffiles else " "
                node = self.agent.fs.get(path)
                if node is None:
                    lines.append(f"missing   {attr} {path}\n")
                elif node.data != data:
                    lines.append(f"??5?????? {attr} {path}\n")
        return (1 if lines else 0), "".join(lines).encode(), b""

    def _install(self, deb: bytes) -> Answer:
        package = next((p for p in self.packages if p.deb == deb), None)
        if package is None:
            return 2, b"", b"dpkg-deb: error: not a Debian format archive\n"
        if self.locked:
            self.locked -= 1
            return 2, b"", b"dpkg: error: dpkg frontend lock was locked by another process with pid 7\n"
        self.installs.append(package.name)
        if self.on_install is not None:
            self.on_install(package)
        if self.install_failures:
            self.install_failures -= 1
            package.status = "iF "
            return 1, b"", b"dpkg: error processing package (--install): postinst failed\n"
        for path, data in package.files.items():
            if path in package.conffiles:
                continue   # kept when modified, stays deleted when deleted: --force-confold
            self.agent.file(path, data, 0o755 if "/bin/" in path else 0o644)
        package.status = "ii "
        return 0, b"", b""
