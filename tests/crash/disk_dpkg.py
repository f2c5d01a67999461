"""A fake dpkg for the crash harness: :class:`tests.unit.fake_dpkg.FakeDpkg` over real files in a scratch
directory, with its model in a JSON file there, behind a transport that answers every package command
with it, so the killed apply and the recovery after it (two processes) see one and the same dpkg.

dpkg never runs on this host: ``dpkg``, ``dpkg-query``, ``env ... dpkg``, the policy-rc.d ``sh -c``
commands, ``test -e`` of the policy-rc.d, ``sha256sum`` and ``rm`` of the uploaded ``.deb`` are answered
by the model (the agent's own ``sha256sum`` of its script runs for real); any other command of a package
manager, a shell or systemd is refused, except ``systemctl is-system-running`` (recovery's verification
of an applied fix), which answers ``running``. The host's
``/usr/sbin/policy-rc.d`` is ``policy-rc.d`` beside the JSON file. The package's files are real files
under the scenario's scratch root, written as dpkg does (``.dpkg-new`` then rename).

Crash points (mode ``dpkg``): before each of those commands, before the upload of the ``.deb``, and after
each step of a dpkg run (its status or one of its files changed, see :class:`FakeDpkg`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator import dpkg
from orchestrator.systemd.argv import is_system_running_argv
from orchestrator.transport.base import CommandResult
from tests.crash.harness import CrashingLocal, crash_point
from tests.unit.fake_dpkg import FakeDpkg, FakePackage

#: Programs that must never run for real here: answered by the model or refused.
REFUSED = frozenset({"dpkg", "dpkg-query", "dpkg-deb", "apt", "apt-get", "env", "sh", "systemctl",
                     "invoke-rc.d", "deb-systemd-invoke"})


class DiskDpkg(FakeDpkg):
    """The model in ``state`` (JSON), the host's files on disk. ``point`` is called with a description
    after each step of a dpkg run, once that step is durable."""

    def __init__(self, state: Path, point: Callable[[str], None] = lambda _what: None) -> None:
        self.state = state
        self.policy_rc = state.with_name("policy-rc.d")
        self.point = point
        self.on_install = None
        self.installs = []
        self.load()

    @staticmethod
    def create(state: Path, packages: Sequence[FakePackage], *, install_failures: int = 0) -> DiskDpkg:
        """A fresh model in ``state`` (any earlier one and its policy-rc.d are gone)."""
        state.parent.mkdir(parents=True, exist_ok=True)
        state.with_name("policy-rc.d").unlink(missing_ok=True)
        document = {"packages": [_package_json(p) for p in packages], "install_failures": install_failures,
                    "locked": 0, "configure_fails": False}
        state.write_text(json.dumps(document))
        return DiskDpkg(state)

    def load(self) -> None:
        document: dict[str, Any] = json.loads(self.state.read_text())
        self.packages = [_package_of(p) for p in document["packages"]]
        self.install_failures = int(document["install_failures"])
        self.locked = int(document["locked"])
        self.configure_fails = bool(document["configure_fails"])

    def save(self) -> None:
        document = {"packages": [_package_json(p) for p in self.packages],
                    "install_failures": self.install_failures, "locked": self.locked,
                    "configure_fails": self.configure_fails}
        temp = self.state.with_name(self.state.name + ".new")
        temp.write_text(json.dumps(document))
        temp.replace(self.state)

    def run(self, argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes] | None:
        """One command against the model as the other process left it; None: not a package command."""
        self.load()
        answer = self.answer(argv, stdin)
        if answer is not None:
            self.save()
        return answer

    def stage(self, package: FakePackage, step: str) -> None:
        self.save()
        self.point(f"dpkg {package.name} {step}")

    def _path(self, path: str) -> Path:
        return self.policy_rc if path == dpkg.POLICY_RC else Path(path)

    def read(self, path: str) -> bytes | None:
        try:
            return self._path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes, mode: int) -> None:
        real = self._path(path)
        real.parent.mkdir(parents=True, exist_ok=True)
        temp = real.with_name(real.name + ".dpkg-new")
        temp.write_bytes(data)
        temp.chmod(mode)
        temp.replace(real)

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    read_upload = read
    delete_upload = delete


def _package_json(p: FakePackage) -> dict[str, Any]:
    return {**asdict(p), "files": {path: data.hex() for path, data in p.files.items()},
            "conffiles": sorted(p.conffiles)}


def _package_of(item: dict[str, Any]) -> FakePackage:
    return FakePackage(item["name"], item["version"], item["arch"], item["status"],
                       {path: bytes.fromhex(data) for path, data in item["files"].items()},
                       frozenset(item["conffiles"]))


class FakeDpkgLocal(CrashingLocal):
    """:class:`CrashingLocal` (the agent may die at its Nth call) whose package commands go to a
    :class:`DiskDpkg`; this process dies (SIGKILL) at the ``crash_at``-th package crash point."""

    def __init__(self, state: Path, *, crash_at: int = 0, counter: str, agent_crash_at: int = 0,
                 agent_counter: str) -> None:
        super().__init__(agent_crash_at, agent_counter)
        self.dpkg = DiskDpkg(state, self.point)
        self.dpkg_crash_at, self.dpkg_counter = crash_at, counter

    def point(self, what: str) -> None:
        crash_point(self.dpkg_counter, self.dpkg_crash_at, what)

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        args = tuple(argv)
        if args == tuple(is_system_running_argv()):   # what recovery's verification asks of systemd
            return CommandResult(args, 0, b"running\n", b"")
        # The agent's own sha256sum (of its script) runs for real; that of the .deb is the model's.
        is_upload = args[0] in ("rm", "sha256sum") and args[-1].endswith(".deb")
        if args[0] in REFUSED or args == ("test", "-e", dpkg.POLICY_RC) or is_upload:
            self.point(f"before {' '.join(args[:4])}")
            answer = self.dpkg.run(args, kwargs.get("stdin"))
            if answer is None:
                raise AssertionError(f"the crash harness never runs {list(args)} on this host")
            return CommandResult(args, *answer)
        return super().run(argv, **kwargs)

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        if remote.endswith(".deb"):
            self.point(f"upload {remote}")
        super().put_file(local, remote, mode=mode)
