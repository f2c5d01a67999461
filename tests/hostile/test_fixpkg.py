"""Hostile fix packages (issue 13): tampered, oversized, malformed, outside the roots, racing symlinks.

Fix packages have no CLI verb of their own: ``vmrepair run`` builds one, saves it under the state
directory and applies it, so these cases hit the two boundaries a package crosses on its way, as the
CLI would. :meth:`FixPackage.load` (what the apply stage reads back from disk) must refuse with a
FixPackageError (exit code 7) whose message names ``package.json`` and what is wrong; the apply
runner and the agent on the target must refuse before the first change, with the target untouched.
No case may hang (FIFOs), raise anything but the project's errors, or write outside the roots.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.remote import vmrepair_agent
from orchestrator.apply import apply_package
from orchestrator.apply.journal import Journal
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import ABSENT, DaemonReloadOp, FixPackage, WriteFileOp
from orchestrator.fixpkg import package as package_module
from orchestrator.state import open_state
from orchestrator.state.transactions import TransactionStore
from orchestrator.transport.local import LocalTransport

CONF, NEW = "/etc/app/app.conf", "/etc/app/conf.d/new.conf"
OLD_DATA, NEW_DATA, EXTRA = b"workers 0\n", b"workers 4\n", b"extra = 1\n"
FIX_PACKAGE_EXIT = 7


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_package(root: str = "/etc", *, uid: int = 0) -> FixPackage:
    prefix = "" if root == "/etc" else root.removesuffix("/etc")
    return FixPackage(
        id="pkg-hostile", created_at="2026-12-05T00:00:00+00:00",
        operations=(
            WriteFileOp(prefix + CONF, sha(NEW_DATA), len(NEW_DATA), 0o644, uid, uid, sha(OLD_DATA)),
            WriteFileOp(prefix + NEW, sha(EXTRA), len(EXTRA), 0o640, uid, uid, ABSENT),
        ),
        blobs={sha(NEW_DATA): NEW_DATA, sha(EXTRA): EXTRA}, issue={"id": "app:1"},
        diagnosis={"cause": "workers 0"}, validation={"passed": True}, reboot_required=False,
        allowed_roots=(root,))


@pytest.fixture
def saved(hostile_env: Path) -> Path:
    directory = hostile_env / "state" / "packages" / "pkg-hostile"
    make_package().save(directory)
    return directory


def load_refused(directory: Path) -> str:
    """Load ``directory``; it must be refused the way the CLI reports it. Returns the message."""
    with pytest.raises(FixPackageError) as info:
        FixPackage.load(directory)
    assert info.value.exit_code == FIX_PACKAGE_EXIT
    return info.value.message


def document(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "package.json").read_bytes())
    return data


def rewrite(directory: Path, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Edit package.json the way a forger with write access would: every digest made to match again."""
    doc = document(directory)
    mutate(doc)
    if isinstance(doc.get("operations"), list):
        canonical = json.dumps(doc["operations"], sort_keys=True, separators=(",", ":"))
        doc["operations_sha256"] = sha(canonical.encode())
    body = {k: v for k, v in doc.items() if k != "package_sha256"}
    doc["package_sha256"] = sha(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=True).encode("ascii"))
    (directory / "package.json").write_text(json.dumps(doc))


def blob(directory: Path, data: bytes = NEW_DATA) -> Path:
    return directory / "files" / sha(data)


# ------------------------------------------------------------------ tampered or damaged on disk

def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _symlink_to_other(path: Path) -> None:
    other = path.with_name("other")
    other.write_bytes(b"workers 9\n")
    path.unlink()
    path.symlink_to(other)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


MISMATCH = "does not match its hash: tampered or corrupt"
BLOB_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "content changed": (lambda p: p.write_bytes(b"workers 9\n"), MISMATCH),
    "truncated": (lambda p: p.write_bytes(NEW_DATA[:3]), MISMATCH),
    "grown": (lambda p: p.write_bytes(NEW_DATA + b"x" * 100_000), MISMATCH),
    "emptied": (lambda p: p.write_bytes(b""), MISMATCH),
    "removed": (lambda p: p.unlink(), f"content of {CONF} (files/{sha(NEW_DATA)}) is missing"),
    "a fifo (must not hang)": (_fifo, "is not a regular file"),
    "a symlink to other content": (_symlink_to_other, "is not a regular file"),
    "a directory": (_directory, "is not a regular file"),
}


@pytest.mark.parametrize("case", BLOB_TAMPERING, ids=list(BLOB_TAMPERING))
def test_tampered_blob_is_refused(saved: Path, case: str) -> None:
    tamper, expected = BLOB_TAMPERING[case]
    tamper(blob(saved))
    message = load_refused(saved)
    assert str(saved / "package.json") in message and expected in message
    assert f"content of {CONF}" in message


DOCUMENT_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: p.unlink(), "is missing: no fix package here"),
    "not JSON": (lambda p: p.write_bytes(b"{\"id\": "), "is not valid JSON"),
    "not UTF-8": (lambda p: p.write_bytes(b"\xff\xfe{}"), "is not valid JSON"),
    "a JSON list": (lambda p: p.write_text("[1, 2]"), "not a format-1 fix package"),
    "another format": (lambda p: p.write_text('{"format": 2}'), "not a format-1 fix package"),
    "deeply nested": (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "is not valid JSON"),
    "a fifo (must not hang)": (_fifo, "is not a regular file"),
    "a symlink": (_symlink_to_other, "is not a regular file"),
    "a directory": (_directory, "is not a regular file"),
}


@pytest.mark.parametrize("case", DOCUMENT_DAMAGE, ids=list(DOCUMENT_DAMAGE))
def test_damaged_package_json_is_refused(saved: Path, case: str) -> None:
    damage, expected = DOCUMENT_DAMAGE[case]
    damage(saved / "package.json")
    message = load_refused(saved)
    assert str(saved / "package.json") in message and expected in message


def test_oversized_package_json_is_refused_without_reading_it_all(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package_module, "MAX_PACKAGE_JSON", 1024)
    (saved / "package.json").write_bytes(b" " * 5000)
    assert load_refused(saved) == f"{saved / 'package.json'} is larger than 1024 bytes"


def test_duplicate_keys_in_package_json_are_refused(saved: Path) -> None:
    # A second "allowed_roots" would be what a reviewer reads past while the loader keeps the last one.
    raw = (saved / "package.json").read_text()
    forged = raw.replace('"allowed_roots":', '"allowed_roots": ["/"],\n  "allowed_roots":', 1)
    (saved / "package.json").write_text(forged)
    message = load_refused(saved)
    assert "duplicate key 'allowed_roots'" in message and str(saved / "package.json") in message


def test_edited_operations_without_their_digest_are_refused(saved: Path) -> None:
    doc = document(saved)
    doc["operations"][0]["mode"] = 0o4755
    (saved / "package.json").write_text(json.dumps(doc))
    assert "operations do not match operations_sha256 (edited or corrupt)" in load_refused(saved)


def test_edited_package_without_its_package_digest_is_refused(saved: Path) -> None:
    doc = document(saved)
    doc["validation"] = {"passed": True, "note": "edited"}
    (saved / "package.json").write_text(json.dumps(doc))
    message = load_refused(saved)
    assert "package_sha256" in message and "does not match the package" in message


def test_package_without_its_package_digest_is_refused(saved: Path) -> None:
    doc = document(saved)
    del doc["package_sha256"]
    doc["allowed_roots"] = ["/"]     # the kind of edit only that digest covers
    (saved / "package.json").write_text(json.dumps(doc))
    assert "package_sha256 None does not match the package" in load_refused(saved)


def test_a_huge_declared_size_is_refused_without_reading_it(saved: Path) -> None:
    rewrite(saved, lambda doc: doc["operations"][0].update(size=2**70))
    assert f"content of {CONF} (files/{sha(NEW_DATA)}) does not match its hash" in load_refused(saved)


# ------------------------------------------------------------------ operations a package must not carry

def _op(index: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["operations"][index].update(changes)


OPERATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "path outside the roots": (_op(0, path="/root/.ssh/authorized_keys"),
                               "path /root/.ssh/authorized_keys is outside the allowed roots (/etc)"),
    "prefix is not containment": (_op(0, path="/etcx/passwd"),
                                  "path /etcx/passwd is outside the allowed roots"),
    "the root itself": (_op(0, path="/etc"), "path /etc is outside the allowed roots"),
    "traversal": (_op(0, path="/etc/app/../../root/x"), "contains '..' (path traversal is refused)"),
    "relative path": (_op(0, path="etc/app/app.conf"), "is not absolute"),
    "NUL in path": (_op(0, path="/etc/app\0.conf"), "contains NUL/newline characters"),
    "newline in path": (_op(0, path="/etc/app\n/app.conf"), "contains NUL/newline characters"),
    "non-canonical path": (_op(0, path="//etc/app//app.conf"), "is not in canonical form"),
    "very long path": (_op(0, path="/etc/" + "a" * 5000), "is too long"),
    "path not a string": (_op(0, path=["/etc/x"]), "operations[0].path: expected a string"),
    "mode beyond permission bits": (_op(0, mode=0o10000), "mode 4096 is not a permission mode"),
    "negative mode": (_op(0, mode=-1), "is not a permission mode"),
    "mode as a boolean": (_op(0, mode=True), "operations[0].mode: expected an integer, got True"),
    "mode as a string": (_op(0, mode="0644"), "operations[0].mode: expected an integer, got '0644'"),
    "negative uid": (_op(0, uid=-1), "uid/gid -1/0 out of range"),
    "uid (uid_t)-1": (_op(0, uid=2**32 - 1), "out of range"),
    "float gid": (_op(0, gid=0.0), "operations[0].gid: expected an integer"),
    "negative size": (_op(0, size=-1), "negative size"),
    "uppercase sha256": (_op(0, sha256=sha(NEW_DATA).upper()), "is not a lowercase hex sha256"),
    "bad precondition": (_op(0, expect_sha256="whatever"), "expect_sha256 'whatever' is not a lowercase"),
    "unknown op": (_op(0, op="exec"), "operations[0].op: 'exec' is not one of"),
    "op not hashable": (_op(0, op=["write_file"]), "operations[0].op: ['write_file'] is not one of"),
    "unknown key": (_op(0, follow_symlinks=True), "operations[0]: unknown keys ['follow_symlinks']"),
    "missing key": (lambda doc: doc["operations"][0].pop("mode"), "operations[0].mode: missing"),
    "operation not an object": (lambda doc: doc["operations"].insert(0, "rm -rf /"),
                                "operations[0]: expected an object, got str"),
    "same path twice": (_op(1, path=CONF), f"operations[1]: second operation on {CONF}"),
    "two daemon-reloads": (lambda doc: doc["operations"].extend([{"op": "daemon_reload"}] * 2),
                           "operations[3]: more than one daemon_reload"),
    "unit before a file operation": (
        lambda doc: doc["operations"].insert(0, {"op": "unit", "unit": "app.service", "action": "restart"}),
        "operations[1] (write_file) is out of order"),
    "unit name as an option": (
        lambda doc: doc["operations"].append({"op": "unit", "unit": "-x.service", "action": "restart"}),
        "'-x.service' is not a valid unit name"),
    "unit action not replayable": (
        lambda doc: doc["operations"].append({"op": "unit", "unit": "app.service", "action": "mask"}),
        "unit action 'mask' for app.service not in"),
    "unit file without daemon-reload": (_op(1, path="/etc/systemd/system/app.service"),
                                        "a unit file changes but the package has no daemon_reload"),
    "id with a path in it": (lambda doc: doc.update(id="../../etc/passwd"),
                             "package id '../../etc/passwd' is not a plain name"),
    "relative allowed root": (lambda doc: doc.update(allowed_roots=["relative"]),
                              "allowed root 'relative' must be an absolute path"),
    "allowed roots not strings": (lambda doc: doc.update(allowed_roots=[1]),
                                  "allowed_roots: expected a list of strings"),
}


@pytest.mark.parametrize("case", OPERATIONS, ids=list(OPERATIONS))
def test_forged_operation_is_refused(saved: Path, case: str) -> None:
    mutate, expected = OPERATIONS[case]
    rewrite(saved, mutate)      # digests made to match: only the operation checks stand in the way
    message = load_refused(saved)
    assert str(saved / "package.json") in message
    assert expected in message, message


# ------------------------------------------------------------------ apply: integrity and symlink races

@pytest.fixture
def target_root(hostile_env: Path) -> Path:
    root = hostile_env / "target"
    (root / "etc" / "app").mkdir(parents=True)
    (root / "etc" / "app" / "app.conf").write_bytes(OLD_DATA)
    return root


def apply_to(target_root: Path, pkg: FixPackage, work: Path, **kwargs: Any) -> Any:
    store = TransactionStore(open_state(work / "state.db"))
    txn = store.create(package_id=pkg.id, package_dir=str(work / "pkg"), target="local", component="app",
                       backup_dir=str(work / "backup"), ops_total=len(pkg.operations))
    transport = LocalTransport()
    agent = RemoteAgent(transport, remote_dir=str(work / "agent"))
    return apply_package(pkg, agent, transport, backup_dir=work / "backup",
                         journal=Journal(store, txn, pkg.operations), validate=lambda: True, **kwargs)


def test_package_rewritten_on_disk_after_validation_is_refused_by_the_target(
    target_root: Path, hostile_env: Path
) -> None:
    validated = make_package(str(target_root / "etc"), uid=os.getuid())
    directory = hostile_env / "state" / "packages" / validated.id
    validated.save(directory)
    # Meanwhile someone makes the new file setuid and rewrites every digest to match.
    rewrite(directory, _op(1, mode=0o4755))
    tampered = FixPackage.load(directory)      # loads: its own digests are consistent
    result = apply_to(target_root, tampered, hostile_env / "work", validated_sha256=validated.package_sha256)
    assert result.status == "aborted" and result.is_target_untouched
    (error,) = result.errors
    assert f"fix package 'pkg-hostile' changed since it was validated (sha256 {tampered.package_sha256}, " \
           f"expected {validated.package_sha256}); refusing to apply it" in error
    assert (target_root / "etc" / "app" / "app.conf").read_bytes() == OLD_DATA
    assert not (target_root / "etc" / "app" / "conf.d").exists()


def test_the_validated_package_applies(target_root: Path, hostile_env: Path) -> None:
    validated = make_package(str(target_root / "etc"), uid=os.getuid())
    result = apply_to(target_root, validated, hostile_env / "work", validated_sha256=validated.package_sha256)
    assert (result.status, result.errors) == ("applied", ())
    assert (target_root / "etc" / "app" / "conf.d" / "new.conf").read_bytes() == EXTRA


def _agent_write(path: Path, work: Path) -> dict[str, Any]:
    work.mkdir(exist_ok=True)
    return vmrepair_agent.handle({"op": "write_file", "args": {
        "path": str(path), "data_b64": base64.b64encode(NEW_DATA).decode(), "mode": 0o644,
        "uid": os.getuid(), "gid": os.getgid(), "expect_sha256": None}}, work_dir=str(work))


def test_parent_swapped_for_a_symlink_is_refused_by_the_agent(target_root: Path, hostile_env: Path) -> None:
    outside = hostile_env / "outside"
    outside.mkdir()
    app = target_root / "etc" / "app"
    app.rename(target_root / "etc" / "app.real")
    app.symlink_to(outside)         # the race: checked as a directory, a symlink at write time
    answer = _agent_write(app / "app.conf", hostile_env / "agent")
    assert (answer["ok"], answer["code"]) == (False, "invalid")
    assert f"refusing {app}/app.conf: {app} is a symlink" in answer["error"]
    assert list(outside.iterdir()) == []


def test_target_file_swapped_for_a_symlink_is_refused_by_the_agent(
    target_root: Path, hostile_env: Path
) -> None:
    victim = hostile_env / "victim"
    victim.write_bytes(b"keep")
    conf = target_root / "etc" / "app" / "app.conf"
    conf.unlink()
    conf.symlink_to(victim)
    answer = _agent_write(conf, hostile_env / "agent")
    assert (answer["ok"], answer["code"]) == (False, "invalid")
    assert f"{conf} is a symlink, not a regular file" in answer["error"]
    assert victim.read_bytes() == b"keep"


def test_document_changed_in_transit_is_refused_by_the_target(hostile_env: Path) -> None:
    agent = RemoteAgent(LocalTransport(), remote_dir=str(hostile_env / "agent"))
    pkg = make_package()
    with pytest.raises(AgentFailedError) as info:
        agent.verify_package(pkg.id, pkg.canonical_document() + b" ", pkg.package_sha256)
    assert info.value.code == "precondition"
    assert "fix package 'pkg-hostile' changed since it was validated" in info.value.message
    assert f"expected {pkg.package_sha256}" in info.value.message


def test_unit_file_change_needs_its_reload_even_when_built_in_memory() -> None:
    with pytest.raises(FixPackageError, match="no daemon_reload") as info:
        FixPackage(id="p", created_at="t", operations=(
            WriteFileOp("/etc/systemd/system/x.service", sha(EXTRA), len(EXTRA), 0o644, 0, 0, ABSENT),),
            blobs={sha(EXTRA): EXTRA}, issue={}, diagnosis={}, validation={}, reboot_required=False,
            allowed_roots=("/etc",))
    assert info.value.exit_code == FIX_PACKAGE_EXIT
    FixPackage(id="p", created_at="t", operations=(
        WriteFileOp("/etc/systemd/system/x.service", sha(EXTRA), len(EXTRA), 0o644, 0, 0, ABSENT),
        DaemonReloadOp()), blobs={sha(EXTRA): EXTRA}, issue={}, diagnosis={}, validation={},
        reboot_required=False, allowed_roots=("/etc",))
