"""mirror.map_owners: the VM's files get the target's owners by name; accounts it lacks are created."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.agent.api import Manifest
from orchestrator.capture.snapshot import Capture
from orchestrator.sandbox import mirror
from orchestrator.session.store import Session, new_session
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import file_entry


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return new_session(tmp_path / "sessions", "vm:patient")


def owned(path: str, owner: str, group: str) -> object:
    return replace(file_entry(path), owner=owner, group=group)


def capture_of(tmp_path: Path, *entries: object) -> Capture:
    return Capture(tmp_path / "files.tar", ("/opt/app",), Manifest(tuple(entries)), ())  # type: ignore[arg-type]


def vm(known: set[str]) -> FakeTransport:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "getent":
            return (0, b"x\n", b"") if argv[-1] in known else (2, b"", b"")
        return 0, b"", b""
    return FakeTransport(handler, host="trb")


def test_a_vm_that_matches_costs_no_command(tmp_path: Path, session: Session) -> None:
    entries = (owned("/opt/app/main.py", "root", "root"),)
    transport = vm(set())
    assert mirror.map_owners(transport, capture_of(tmp_path, *entries), Manifest(entries), session) == []
    assert transport.argvs == []


def test_an_application_account_the_vm_lacks_is_created_and_its_files_chowned(
    tmp_path: Path, session: Session
) -> None:
    target = (owned("/opt/app", "myapp", "myapp"), owned("/opt/app/main.py", "myapp", "myapp"),
              owned("/opt/app/etc.conf", "root", "myapp"))
    # The unpack kept the archive's numeric ids, which name nobody in the VM.
    in_vm = Manifest((owned("/opt/app", "1001", "1001"), owned("/opt/app/main.py", "1001", "1001"),
                      owned("/opt/app/etc.conf", "root", "1001")))
    transport = vm({"root"})
    done = mirror.map_owners(transport, capture_of(tmp_path, *target), in_vm, session)
    assert ("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-g", "myapp", "--",
            "myapp") in transport.argvs
    assert transport.argvs[-2:] == [
        ("chown", "-h", "--", "myapp:myapp", "/opt/app", "/opt/app/main.py"),
        ("chown", "-h", "--", "root:myapp", "/opt/app/etc.conf"),
    ]
    assert ("groupadd", "--system", "--", "myapp") in transport.argvs
    assert done == ["groupadd myapp", "useradd myapp", "chown myapp:myapp (2 paths)",
                    "chown root:myapp (1 paths)"]
    event = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()][-1]
    assert event["event"] == "owners_mapped"


def test_a_hostile_account_name_never_reaches_a_command(tmp_path: Path, session: Session) -> None:
    target = (owned("/opt/app/x", "-oroot", "$(reboot)"),)
    transport = vm(set())
    done = mirror.map_owners(transport, capture_of(tmp_path, *target),
                             Manifest((owned("/opt/app/x", "root", "root"),)), session)
    assert transport.argvs == []
    assert done == ["refused 2 account name(s) outside useradd's syntax"]


class _MetaAgent:
    """Answers the VM's non-recursive manifest of the meta paths."""

    def __init__(self, *entries: object) -> None:
        self.entries = entries

    def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = ()) -> Manifest:
        assert recursive is False
        return Manifest(tuple(e for e in self.entries if e.path in paths))  # type: ignore[attr-defined]


def _meta_capture(tmp_path: Path, entries: tuple[object, ...], missing: tuple[str, ...]) -> Capture:
    return replace(Capture(tmp_path / "files.tar", ("/etc/app",), Manifest(entries, missing), ()),  # type: ignore[arg-type]
                   meta_paths=("/var/lib/app", "/var/log/app"))


def test_state_directories_get_the_targets_absence_mode_and_owner(tmp_path: Path, session: Session) -> None:
    target_dir = replace(owned("/var/lib/app", "root", "root"), type="dir", mode=0o755)
    capture = _meta_capture(tmp_path, (target_dir,), ("/var/log/app",))
    in_vm = _MetaAgent(replace(owned("/var/lib/app", "app", "app"), type="dir", mode=0o750),
                       replace(owned("/var/log/app", "app", "app"), type="dir", mode=0o750))
    transport = vm(set())
    done = mirror.meta_nodes(transport, in_vm, capture, session)  # type: ignore[arg-type]
    assert transport.argvs == [("chown", "-h", "--", "root:root", "/var/lib/app"),
                               ("chmod", "--", "755", "/var/lib/app"),
                               ("rm", "-rf", "--", "/var/log/app")]
    assert done == mirror.MetaMirror(("/var/lib/app: root:root 755", "removed /var/log/app"))


def test_a_directory_that_already_matches_costs_nothing(tmp_path: Path, session: Session) -> None:
    same = replace(owned("/var/lib/app", "app", "app"), type="dir", mode=0o750)
    capture = _meta_capture(tmp_path, (same,), ())
    transport = vm(set())
    assert mirror.meta_nodes(transport, _MetaAgent(same), capture, session) == mirror.MetaMirror()  # type: ignore[arg-type]
    assert transport.argvs == []


def _file(path: str, mode: int, owner: str = "root", group: str = "root", kind: str = "file") -> object:
    return replace(owned(path, owner, group), type=kind, mode=mode)


def _system_capture(tmp_path: Path, path: str, *entries: object, missing: tuple[str, ...] = ()) -> Capture:
    return replace(Capture(tmp_path / "files.tar", (), Manifest(entries, missing), ()),  # type: ignore[arg-type]
                   meta_paths=(path,))


def test_a_system_files_mode_and_owner_go_to_the_vms_own_file(tmp_path: Path, session: Session) -> None:
    capture = _system_capture(tmp_path, "/etc/shadow", _file("/etc/shadow", 0o644, group="shadow"))
    transport = vm(set())
    done = mirror.meta_nodes(transport, _MetaAgent(_file("/etc/shadow", 0o640, group="shadow")),  # type: ignore[arg-type]
                             capture, session)
    # chown and chmod only: nothing writes, moves or replaces the VM's file.
    assert transport.argvs == [("chown", "-h", "--", "root:shadow", "/etc/shadow"),
                               ("chmod", "--", "644", "/etc/shadow")]
    assert done == mirror.MetaMirror(("/etc/shadow: root:shadow 644",))


def test_a_file_the_vm_lacks_is_not_created_and_is_reported_lacking(tmp_path: Path, session: Session) -> None:
    capture = _system_capture(tmp_path, "/etc/sudoers", _file("/etc/sudoers", 0o666))
    transport = vm(set())
    done = mirror.meta_nodes(transport, _MetaAgent(), capture, session)  # type: ignore[arg-type]
    assert transport.argvs == []
    assert done.lacking == ("/etc/sudoers",)
    assert "the VM has no such file" in done.done[0]


def test_another_type_in_the_vm_is_never_replaced(tmp_path: Path, session: Session) -> None:
    capture = _system_capture(tmp_path, "/etc/sudoers", _file("/etc/sudoers", 0o666))
    transport = vm(set())
    in_vm = _MetaAgent(_file("/etc/sudoers", 0o755, kind="dir"))
    assert mirror.meta_nodes(transport, in_vm, capture, session) == mirror.MetaMirror()  # type: ignore[arg-type]
    assert transport.argvs == []


def test_a_system_path_the_target_lacks_stays_in_the_vm(tmp_path: Path, session: Session) -> None:
    capture = _system_capture(tmp_path, "/etc/sudoers", missing=("/etc/sudoers",))
    transport = vm(set())
    in_vm = _MetaAgent(_file("/etc/sudoers", 0o440))
    done = mirror.meta_nodes(transport, in_vm, capture, session)  # type: ignore[arg-type]
    assert transport.argvs == []
    assert done.done == ("kept /etc/sudoers: the target lacks it, but the VM's own system file is never "
                         "removed",)


def test_packaged_files_the_target_lacks_are_removed_in_the_vm(tmp_path: Path, session: Session) -> None:
    from orchestrator.errors import AgentError

    class Agent:
        def __init__(self) -> None:
            self.removed: list[str] = []

        def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
            if path == "/usr/bin/gone-here-too":
                raise AgentError("/usr/bin/gone-here-too does not exist")
            self.removed.append(path)

    capture = replace(capture_of(tmp_path), package_missing=("/usr/sbin/nginx", "/usr/bin/gone-here-too"))
    agent = Agent()
    assert mirror.packaged_absences(agent, capture, session) == ["/usr/sbin/nginx"]  # type: ignore[arg-type]
    assert agent.removed == ["/usr/sbin/nginx"]
    event = [json.loads(line) for line in (session.dir / "evidence.jsonl").read_text().splitlines()][-1]
    assert event["event"] == "package_absences_mirrored" and len(event["refused"]) == 1
