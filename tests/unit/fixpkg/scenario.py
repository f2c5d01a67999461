"""A small target (app config, a unit file, a big log) and helpers to build packages from it."""

from __future__ import annotations

from typing import Any

from orchestrator.fixpkg import FixPackage, compute_package
from tests.unit.apply.fakes import FakeAgent, FakeFile

ROOTS = ["/etc", "/var/log", "/var/lib"]
PATHS = ["/etc/app", "/etc/systemd/system/app.service", "/var/log/app"]
CONF = "/etc/app/app.conf"
OLD = "/etc/app/old.conf"
KEY = "/etc/app/secret.key"
UNIT_FILE = "/etc/systemd/system/app.service"
LOG = "/var/log/app/app.log"


def make_target() -> FakeAgent:
    return FakeAgent(files={
        CONF: FakeFile(b"listen 80\nworkers 0\n", 0o644, 0, 0),
        OLD: FakeFile(b"legacy = true\n", 0o644, 0, 0),
        KEY: FakeFile(b"secret\n", 0o644, 101, 101),
        UNIT_FILE: FakeFile(b"[Service]\nExecStart=/usr/bin/app\n", 0o644, 0, 0),
        LOG: FakeFile(b"line\n" * 1000, 0o640, 101, 101),
    }, dirs={"/var/log/app"})


def make_vm(target: FakeAgent, *, placeholder_log: bool = True) -> FakeAgent:
    """The VM as unpacked from the capture: same files, but a placeholder log holds fake content and
    the app user has another uid there (104 instead of 101)."""
    vm = target.clone()
    for f in vm.files.values():
        if f.uid == 101:
            f.uid = f.gid = 104
    if placeholder_log:
        vm.files[LOG].data = b"[placeholder: 5000 bytes not captured]\n"
    return vm


def build(
    target: FakeAgent,
    vm: FakeAgent,
    replay: list[dict[str, Any]] | None = None,
    *,
    placeholders: set[str] | None = None,
    roots: list[str] | None = None,
    **kwargs: Any,
) -> FixPackage:
    return compute_package(
        target.manifest(PATHS), vm.manifest(PATHS), vm, replay or [],
        placeholders={LOG} if placeholders is None else placeholders,
        allowed_roots=ROOTS if roots is None else roots,
        diagnosis={"cause": "workers 0"}, validation={"passed": True},
        issue={"id": "app:unit_failed:1234abcd"}, reboot_required=False, **kwargs,
    )
