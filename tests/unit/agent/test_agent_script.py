"""The agent script itself: self-contained, runnable the way RemoteAgent runs it, strict about its
arguments, and the walk rules (caps, filesystem boundaries, undecodable names)."""

from __future__ import annotations

import ast
import errno
import importlib.resources
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.remote import vmrepair_agent
from orchestrator.agent.requests import agent_script

SCRIPT = Path(vmrepair_agent.__file__)


def test_script_is_found_as_package_data() -> None:
    resource = importlib.resources.files("orchestrator.agent") / "remote" / "vmrepair_agent.py"
    assert resource.read_bytes() == agent_script() == SCRIPT.read_bytes()


def test_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules - {"__future__"} <= set(sys.stdlib_module_names)


def _run(python: str, stdin: bytes, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    # As RemoteAgent runs it: isolated mode, from a copy outside the source tree.
    script = tmp_path / "agent-test.py"
    script.write_bytes(agent_script())
    proc = subprocess.run([python, "-I", "-B", str(script)], input=stdin, capture_output=True,
                          timeout=30, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_script_answers_garbage_requests_with_exit_zero(agent_python: str, tmp_path: Path) -> None:
    assert _run(agent_python, b"\xff not json", tmp_path)[1]["code"] == "invalid"
    status, answer = _run(agent_python, b'{"op": "format_disk", "args": {}}', tmp_path)
    assert (status, answer) == (0, {"ok": False, "error": "unknown op 'format_disk'", "code": "invalid"})


@pytest.mark.parametrize(("request_", "error"), [
    ([], "request must be an object with 'op' and an 'args' object"),
    ({"op": "manifest", "args": []}, "request must be an object with 'op' and an 'args' object"),
    ({"op": "manifest", "args": {"paths": "/etc"}}, "argument 'paths' must be a list of paths"),
    ({"op": "manifest", "args": {"paths": ["etc"]}}, "paths must be an absolute path, got 'etc'"),
    ({"op": "manifest", "args": {"paths": ["//etc"]}}, "paths '//etc' is not normalised"),
    ({"op": "manifest", "args": {"paths": ["/etc/"]}}, "paths '/etc/' is not normalised"),
    ({"op": "manifest", "args": {"paths": ["/etc"], "recursive": 0}},
     "argument 'recursive' must be true or false"),
    ({"op": "manifest", "args": {"paths": ["/etc"], "digests": "no"}},
     "argument 'digests' must be true or false"),
    ({"op": "read_file", "args": {"path": "/etc/hostname", "max_bytes": True}},
     "argument 'max_bytes' must be an integer in [0, 9223372036854775808]"),
    ({"op": "write_file", "args": {"path": "/x", "data_b64": "!!", "mode": 0, "uid": 0, "gid": 0}},
     "argument 'data_b64' is not valid base64"),
    ({"op": "write_file", "args": {"path": "/x", "data_b64": "", "mode": 0o10000, "uid": 0, "gid": 0}},
     "argument 'mode' must be an integer in [0, 4095]"),
    ({"op": "remove_file", "args": {"path": "/x", "expect_sha256": "ABC"}},
     "expect_sha256 must be null, 'absent' or a lowercase sha256 hex digest"),
    ({"op": "rotate_log", "args": {"path": "/x", "method": "delete"}},
     "method must be 'compress' or 'truncate'"),
    ({"op": "remove_file", "args": {"path": "/"}}, "refusing to operate on /"),
])
def test_bad_arguments_are_refused(request_: Any, error: str, tmp_path: Path) -> None:
    assert vmrepair_agent.handle(request_, work_dir=str(tmp_path)) == {"ok": False, "error": error,
                                                                       "code": "invalid"}


def test_manifest_entry_cap(call: Callable[..., dict[str, Any]], root: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmrepair_agent, "MAX_ENTRIES", 3)
    for name in "abc":
        (root / name).write_bytes(b"")
    assert call("manifest", paths=[str(root)]) == {
        "ok": False, "code": "invalid", "error": "more than 3 entries; capture narrower paths"}


def test_walk_does_not_cross_filesystems(call: Callable[..., dict[str, Any]]) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == Path("/dev").stat().st_dev:
        pytest.skip("needs /dev/shm mounted as its own filesystem")
    marker = shm / f"vmrepair-test-{os.getpid()}"
    marker.write_bytes(b"")
    try:
        answer = call("big_files", roots=["/dev"], min_bytes=0, limit=10_000)
        listed = call("manifest", paths=["/dev"])
    finally:
        marker.unlink()
    assert str(marker) not in [f["path"] for f in answer["result"]["files"]]
    paths = [e["path"] for e in listed["result"]["entries"]]
    assert "/dev/shm" in paths  # the mount point is listed, like find -xdev does
    assert not [p for p in paths if p.startswith("/dev/shm/")]


def test_undecodable_file_names_round_trip(agent: RemoteAgent, root: Path) -> None:
    raw = os.fsencode(root) + b"/caf\xe9.conf"
    with open(raw, "wb") as handle:  # noqa: PTH123 - pathlib cannot name a non-UTF-8 file
        handle.write(b"latin-1 name")
    (entry,) = [e for e in agent.manifest([str(root)]).entries if e.type == "file"]
    assert os.fsencode(entry.path) == raw
    assert agent.read_file(entry.path, max_bytes=100) == b"latin-1 name"
    packed = agent.pack([str(root)], max_file_bytes=100)
    os.unlink(raw)  # noqa: PTH108
    result = agent.unpack(packed.remote_tar, [], [str(root)])
    assert entry.path in result.written
    with open(raw, "rb") as handle:  # noqa: PTH123
        assert handle.read() == b"latin-1 name"


def test_disk_full_mid_write_names_the_file_and_leaves_no_temp(
    call: Callable[..., dict[str, Any]], root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (root / "conf").write_bytes(b"old")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(vmrepair_agent, "write_all", disk_full)
    answer = call("write_file", path=str(root / "conf"), data_b64="bmV3", mode=0o644, uid=0, gid=0)

    assert answer == {"ok": False, "code": "nospace", "error": f"No space left on device ({root}/conf)"}
    assert [p.name for p in root.iterdir()] == ["conf"]
    assert (root / "conf").read_bytes() == b"old"
