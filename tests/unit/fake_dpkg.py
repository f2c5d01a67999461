"""dpkg on a fake host: the package commands of :mod:`orchestrator.dpkg` answered from a small model.

:class:`FakeDpkg` holds the model and answers the commands; where the host's files live is left to a
subclass. :class:`FakeDpkgHost` keeps them in a :class:`~tests.unit.fake_agent.FakeAgent` (uploads in
its :class:`FakeTransport`), for unit tests; the crash harness keeps them on disk
(:mod:`tests.crash.disk_dpkg`).

A package (:class:`FakePackage`) has a name, version, architecture, dpkg status and its pristine files
(path -> content; ``conffiles`` among them). ``dpkg -i`` of an uploaded ``.deb`` (any bytes that a
package's ``deb`` equals) goes through dpkg's states for a reinstall: half-installed with reinst-required
(``iHR``), every pristine file written back except conffiles that exist (``--force-confold`` keeps them;
a deleted one stays deleted), unpacked (``iU``), half-configured (``iF``), installed (``ii``);
:meth:`FakeDpkg.stage` is called after each of those steps (a crash point for the harness).
``dpkg --configure`` moves a configurable package through ``iF`` to ``ii`` the same way. ``dpkg
--verify`` compares the host's files with the pristine ones. Faults: ``install_failures`` (the next dpkg
-i fails in its postinst and leaves the package ``iF``), ``locked`` (that many dpkg -i answer the lock
error), ``on_install`` (called before the files are written).
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


class FakeDpkg:
    """Answers dpkg, dpkg-query, ``dpkg --verify``, ``sha256sum`` of an upload and the policy-rc.d
    ``sh -c`` commands from ``packages`` and the host's files (the abstract methods below)."""

    packages: list[FakePackage]
    install_failures: int
    locked: int
    configure_fails: bool
    on_install: Callable[[FakePackage], None] | None
    installs: list[str]

    # -- the host's files, as a subclass keeps them ----------------------------------------------------
    def read(self, path: str) -> bytes | None:
        """A file of the host (None: absent)."""
        raise NotImplementedError

    def write(self, path: str, data: bytes, mode: int) -> None:
        raise NotImplementedError

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def read_upload(self, path: str) -> bytes | None:
        """A file the orchestrator uploaded (put_file) to the host (None: absent)."""
        raise NotImplementedError

    def delete_upload(self, path: str) -> None:
        raise NotImplementedError

    def stage(self, package: FakePackage, step: str) -> None:
        """Called after each step of a dpkg run (the package's status or a file changed)."""

    # -- the commands -------------------------------------------------------------------------------
    def package(self, name: str) -> FakePackage:
        return next(p for p in self.packages if p.name == name)

    def _by_spec(self, spec: str) -> list[FakePackage]:
        name, _, arch = spec.partition(":")
        return [p for p in self.packages if p.name == name and (not arch or p.arch == arch)]

    def answer(self, argv: tuple[str, ...], stdin: bytes | None) -> Answer | None:  # noqa: PLR0911, PLR0912 - one case per command
        """The answer to ``argv``; None when it is not one of the commands modelled here."""
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
                return 0, "".join(f" {n}  unconfigured\n" for n in self.audit()).encode(), b""
            case ("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--force-confold", "-i", path):
                return self._install(self.read_upload(path) or b"")
            case ("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", which):
                return self._configure(which)
            case ("sha256sum", "--", path):
                data = self.read_upload(path)
                if data is None:
                    return 1, b"", b"No such file\n"
                return 0, f"{hashlib.sha256(data).hexdigest()}  {path}\n".encode(), b""
            case ("rm", "-f", "--", path):
                self.delete_upload(path)
                return 0, b"", b""
            case ("test", "-e", dpkg.POLICY_RC):
                return (0 if self.read(dpkg.POLICY_RC) is not None else 1), b"", b""
            case ("sh", "-c", script, "sh", dpkg.POLICY_RC, *_) if "set -C" in script:
                if self.read(dpkg.POLICY_RC) is not None:
                    return 1, b"", b"cannot overwrite existing file\n"
                self.write(dpkg.POLICY_RC, stdin or b"", 0o755)
                return 0, b"", b""
            case ("sh", "-c", script, "sh", dpkg.POLICY_RC, mark) if "grep" in script:
                data = self.read(dpkg.POLICY_RC)
                if data is not None and mark.encode() in data.splitlines():
                    self.delete(dpkg.POLICY_RC)
                return 0, b"", b""
        return None

    def audit(self) -> list[str]:
        """What ``dpkg --audit`` reports: packages left half-installed, unconfigured or reinst-required."""
        return [p.name for p in self.packages
                if p.status[1] in dpkg.CONFIGURABLE | {dpkg.HALF_INSTALLED} or p.status[2:3] == "R"]

    def _verify(self, found: list[FakePackage]) -> Answer:
        lines = []
        for p in found:
            for path, data in sorted(p.files.items()):
                attr = "c" if path in p.conffiles else " "
                now = self.read(path)
                if now is None:
                    lines.append(f"missing   {attr} {path}\n")
                elif now != data:
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
        is_failing = self.install_failures > 0
        if is_failing:   # consumed as the run starts: a run cut short does not pass it on to the next
            self.install_failures -= 1
        package.status = "iHR"
        self.stage(package, "half-installed")
        for path, data in sorted(package.files.items()):
            if path in package.conffiles:
                continue   # kept when modified (--force-confold), stays deleted when deleted
            self.write(path, data, 0o755 if "/bin/" in path else 0o644)
            self.stage(package, f"unpacked {path}")
        package.status = "iU "
        self.stage(package, "unpacked")
        package.status = "iF "
        self.stage(package, "half-configured")
        if is_failing:
            return 1, b"", b"dpkg: error processing package (--install): postinst failed\n"
        package.status = "ii "
        self.stage(package, "installed")
        return 0, b"", b""

    def _configure(self, which: str) -> Answer:
        if self.configure_fails:
            return 1, b"", b"dpkg: error processing package (--configure)\n"
        for p in self.packages:
            if which in ("-a", p.name) and p.status[1] in dpkg.CONFIGURABLE:
                p.status = "iF "
                self.stage(p, "half-configured")
                p.status = "ii "
                self.stage(p, "installed")
        return 0, b"", b""


@dataclass
class FakeDpkgHost(FakeDpkg):
    """dpkg over a :class:`FakeAgent`'s files; :attr:`transport` answers with it (anything else: 0)."""

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

    def handle(self, argv: tuple[str, ...], stdin: bytes | None) -> Answer:
        answer = self.answer(argv, stdin)
        return (0, b"", b"") if answer is None else answer

    def read(self, path: str) -> bytes | None:
        node = self.agent.fs.get(path)
        return None if node is None else node.data

    def write(self, path: str, data: bytes, mode: int) -> None:
        self.agent.file(path, data, mode)

    def delete(self, path: str) -> None:
        self.agent.fs.pop(path, None)

    def read_upload(self, path: str) -> bytes | None:
        return self.transport.files.get(path)

    def delete_upload(self, path: str) -> None:
        self.transport.files.pop(path, None)
