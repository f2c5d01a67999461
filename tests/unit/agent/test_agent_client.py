"""RemoteAgent against FakeTransport: installing the script, and every way an answer can be bad."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.agent.api import FileEntry, Manifest, Placeholder
from orchestrator.agent.client import RemoteAgent
from orchestrator.agent.errors import AgentFailedError
from orchestrator.agent.requests import agent_script
from orchestrator.errors import AgentError
from orchestrator.transport.fake import FakeTransport

HOST = "target.example"
SHA = hashlib.sha256(agent_script()).hexdigest()
SCRIPT = f"/run/vmrepair/agent-{SHA[:12]}.py"

#: An answer: raw stdout bytes, a JSON-able result (wrapped as ok), or (exit, stdout, stderr).
Answer = bytes | tuple[int, bytes, bytes] | Any


def _fake(answers: dict[str, Answer] | Callable[[str], Answer], *, installed: bool = True
          ) -> tuple[RemoteAgent, FakeTransport]:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[0] == "install":
            return 0, b"", b""
        if argv[0] == "sha256sum":
            return (0, f"{SHA}  {argv[-1]}\n".encode(), b"") if installed else (1, b"", b"no such file\n")
        op = json.loads(stdin or b"{}")["op"]
        answer = answers(op) if callable(answers) else answers[op]
        if isinstance(answer, tuple):
            return answer
        if isinstance(answer, bytes):
            return 0, answer, b""
        return 0, json.dumps({"ok": True, "result": answer}).encode(), b""

    transport = FakeTransport(handler, host=HOST)
    return RemoteAgent(transport, timeout=7.0), transport


def _entry(path: str, **changes: Any) -> dict[str, Any]:
    entry = {"path": path, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "owner": "root",
             "group": "root", "size": 3, "mtime": 1.5, "sha256": "a" * 64, "link": None}
    return entry | changes


def _manifest(*entries: dict[str, Any], missing: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"entries": list(entries), "missing": list(missing)}


# -- installing and calling --------------------------------------------------------------------


def test_script_is_installed_once_and_not_uploaded_when_present() -> None:
    agent, transport = _fake({"manifest": _manifest()})
    agent.manifest(["/etc/app"])
    agent.manifest(["/etc/app"])

    assert transport.argvs == [
        ("install", "-d", "-m", "0700", "/run/vmrepair"),
        ("sha256sum", "--", SCRIPT),
        ("python3", "-I", "-B", SCRIPT),
        ("python3", "-I", "-B", SCRIPT),
    ]
    assert transport.files == {}
    request = json.loads(transport.calls[-1].stdin or b"")
    assert request == {"op": "manifest", "args": {"paths": ["/etc/app"]}}
    assert transport.calls[-1].timeout == 7.0


def test_a_manifest_without_recursion_says_so_and_must_not_list_more() -> None:
    agent, transport = _fake({"manifest": _manifest(_entry("/var/lib/app", type="dir", sha256=None))})
    agent.manifest(["/var/lib/app"], recursive=False)
    request = json.loads(transport.calls[-1].stdin or b"")
    assert request == {"op": "manifest", "args": {"paths": ["/var/lib/app"], "recursive": False}}

    agent, _ = _fake({"manifest": _manifest(_entry("/var/lib/app/db"))})
    with pytest.raises(AgentError, match=r"inconsistent answer: entries below the paths asked for: "
                                         r"\['/var/lib/app/db'\]"):
        agent.manifest(["/var/lib/app"], recursive=False)
    assert agent.manifest(["/var/lib/app"]).entries[0].path == "/var/lib/app/db"


def test_a_manifest_without_digests_says_so_and_accepts_files_without_them() -> None:
    agent, transport = _fake({"manifest": _manifest(_entry("/etc/app/a.conf", sha256=None))})
    assert agent.manifest(["/etc/app"], digests=False).entries[0].sha256 is None
    request = json.loads(transport.calls[-1].stdin or b"")
    assert request == {"op": "manifest", "args": {"paths": ["/etc/app"], "digests": False}}
    with pytest.raises(AgentError, match="sha256 must be given"):
        agent.manifest(["/etc/app"])


def test_script_is_uploaded_private_when_missing() -> None:
    agent, transport = _fake({"disk_usage": b"{}"}, installed=False)
    agent.install()
    assert transport.files == {SCRIPT: agent_script()}
    assert transport.modes == {SCRIPT: 0o700}


def test_remote_dir_must_be_absolute_and_normalised() -> None:
    with pytest.raises(ValueError, match="remote_dir must be an absolute, normalised path"):
        RemoteAgent(FakeTransport(), remote_dir="run/vmrepair/")


# -- answers that are not answers --------------------------------------------------------------


def test_non_json_answer() -> None:
    agent, _ = _fake({"manifest": b"Traceback (most recent call last):\n  oops"})
    with pytest.raises(AgentError, match=r"^target\.example: agent manifest: answer is not JSON: Traceback"):
        agent.manifest(["/etc"])


def test_absurdly_nested_answer() -> None:
    agent, _ = _fake({"manifest": b"[" * 200_000 + b"]" * 200_000})
    with pytest.raises(AgentError, match=r"agent manifest: answer is not JSON: \[\[\["):
        agent.manifest(["/etc"])


@pytest.mark.parametrize("stdout", [b"[]", b'{"ok": "yes"}', b'{"ok": true}', b'{"ok": 1, "result": 1}',
                                    b'{"ok": true, "result": null, "extra": 1}'])
def test_answer_with_the_wrong_shape(stdout: bytes) -> None:
    agent, _ = _fake({"move_file": stdout})
    with pytest.raises(AgentError, match=r"agent move_file: answer is not \{ok: true, result: \.\.\.\}"):
        agent.move_file("/a", "/b")


def test_refusal_becomes_agent_failed_error_with_its_code() -> None:
    agent, _ = _fake({"write_file": b'{"ok": false, "error": "/etc/x changed since capture", '
                                    b'"code": "precondition"}'})
    with pytest.raises(AgentFailedError) as info:
        agent.write_file("/etc/x", b"new", mode=0o644, uid=0, gid=0, expect_sha256="b" * 64)
    assert str(info.value) == "target.example: agent write_file: /etc/x changed since capture"
    assert (info.value.code, info.value.op, info.value.host) == ("precondition", "write_file", HOST)
    assert isinstance(info.value, AgentError)


def test_refusal_text_is_cleaned_of_control_characters() -> None:
    answer = {"ok": False, "error": "bad \x1b[31mred\x1b[0m\nline \udcff\u202e" + "x" * 1000, "code": "io"}
    agent, _ = _fake({"jsonl_check": json.dumps(answer).encode()})
    with pytest.raises(AgentFailedError) as info:
        agent.jsonl_check("/var/log/x")
    message = str(info.value)
    assert "\x1b" not in message and "\n" not in message
    assert "bad ?[31mred?[0m?line \\udcff?x" in message
    assert len(message) < 600


def test_refusal_with_an_unknown_code_is_malformed() -> None:
    agent, _ = _fake({"remove_file": b'{"ok": false, "error": "x", "code": "teapot"}'})
    with pytest.raises(AgentError, match=r"agent remove_file: malformed answer: code: Input should be "
                                         r"'precondition', 'not_found', 'nospace', 'invalid' or 'io'"):
        agent.remove_file("/a")


def test_crash_shows_the_end_of_the_traceback() -> None:
    stderr = b"Traceback (most recent call last):\n  File x, line 1\nValueError: boom\n"
    agent, _ = _fake({"disk_usage": (1, b"", stderr)})
    with pytest.raises(AgentError, match=r"agent disk_usage: agent exited 1: .*\| ValueError: boom$"):
        agent.disk_usage("/")


def test_missing_python_is_named() -> None:
    agent, _ = _fake({"disk_usage": (127, b"", b"sh: python3: not found\n")})
    with pytest.raises(AgentError, match="exited 127; is python3 installed on the host"):
        agent.disk_usage("/")


def test_oversized_answer_is_refused() -> None:
    agent, _ = _fake({"read_file": b'{"ok": true, "result": {"data_b64": "' + b"A" * 5000 + b'"}}'})
    with pytest.raises(AgentError, match=r"agent read_file: answer larger than the 4112 bytes allowed"):
        agent.read_file("/etc/hostname", max_bytes=10)


def test_read_file_beyond_the_answer_cap_is_refused_before_running() -> None:
    agent, transport = _fake({})
    with pytest.raises(AgentError, match=r"exceeds the answer cap; use fetch\(\)"):
        agent.read_file("/var/log/huge", max_bytes=1 << 30)
    assert transport.calls == []


# -- answers that are JSON but wrong -----------------------------------------------------------


@pytest.mark.parametrize(("result", "message"), [
    (_manifest(_entry("/etc/a", size="12")), r"entries\.0\.size: Input should be a valid integer"),
    (_manifest(_entry("/etc/a", mode=0o10000)), r"entries\.0\.mode: Input should be less than or equal"),
    (_manifest(_entry("/etc/a", sha256=None)), "sha256 must be given for regular files"),
    (_manifest(_entry("/etc/a", type="symlink", sha256=None)), "link must be given for symlinks"),
    (_manifest(_entry("/etc/../a")), r"entries\.0\.path: Value error, not an absolute, normalised path"),
    (_manifest(_entry("/etc/a", colour="red")), r"entries\.0\.colour: Extra inputs are not permitted"),
    (_manifest(_entry("/etc/a", **{"\x1b[2J": 1})), r"entries\.0\.\?\[2J: Extra inputs are not permitted"),
    (_manifest(_entry("/etc/a", uid=True)), r"entries\.0\.uid: Input should be a valid integer"),
    ({"entries": []}, "missing: Field required"),
])
def test_malformed_manifest(result: dict[str, Any], message: str) -> None:
    agent, _ = _fake({"manifest": result})
    with pytest.raises(AgentError, match=rf"^target\.example: agent manifest: malformed answer: .*{message}"):
        agent.manifest(["/etc"])


def test_manifest_with_paths_nobody_asked_for() -> None:
    agent, _ = _fake({"manifest": _manifest(_entry("/etc/app/x"), _entry("/root/.ssh/id_rsa"))})
    with pytest.raises(AgentError, match=r"inconsistent answer: paths that were not asked for: "
                                         r"\['/root/.ssh/id_rsa'\]"):
        agent.manifest(["/etc/app"])


def _pack(remote_tar: str = "/run/vmrepair/pack-0123456789abcdef.tar", **placeholder: Any) -> dict[str, Any]:
    head = base64.b64encode(b"head").decode()
    ph = {"path": "/var/log/big", "size": 4, "sha256": "a" * 64, "head_b64": head, "tail_b64": ""}
    return {"remote_tar": remote_tar, "manifest": _manifest(_entry("/var/log/big", size=4)),
            "placeholders": [ph | placeholder]}


@pytest.mark.parametrize(("result", "message"), [
    (_pack("/etc/shadow"), r"inconsistent answer: archive '/etc/shadow' is not a pack file in /run/vmrepair"),
    (_pack(size=10, head_b64=base64.b64encode(b"x" * 5000).decode()),
     r"malformed answer: placeholders\.0\.head_b64: Value error, more than 4096 bytes"),
    (_pack(head_b64="***"), r"placeholders\.0\.head_b64: Value error, not valid base64"),
    (_pack(size=2), "head or tail longer than the file"),
    (_pack(sha256="b" * 64), r"inconsistent answer: placeholder '/var/log/big' does not match"),
])
def test_bad_pack_answers(result: dict[str, Any], message: str) -> None:
    agent, _ = _fake({"pack": result})
    with pytest.raises(AgentError, match=message):
        agent.pack(["/var/log"], max_file_bytes=1)


def test_pack_returns_typed_results_and_cleanup_discards_the_archive() -> None:
    discarded: list[Any] = []

    def answers(op: str) -> Any:
        if op == "discard":
            discarded.append(op)
            return {"removed": 1}
        return _pack()

    agent, transport = _fake(answers)
    packed = agent.pack(["/var/log"], max_file_bytes=1)
    assert packed.placeholders == (Placeholder("/var/log/big", 4, "a" * 64, b"head", b""),)
    agent.cleanup()
    agent.cleanup()  # nothing left: no second call
    assert discarded == ["discard"]
    request = json.loads(transport.calls[-1].stdin or b"")
    assert request == {"op": "discard", "args": {"paths": ["/run/vmrepair/pack-0123456789abcdef.tar"]}}


def test_unpack_sends_placeholders_with_their_manifest_metadata() -> None:
    agent, transport = _fake({"unpack": {"written": ["/srv/a"], "placeholders": ["/srv/big"], "failed": []}})
    entry = FileEntry("/srv/big", "file", 0o640, 7, 8, "u", "g", 9, 2.5, "c" * 64)
    agent.unpack("/run/vmrepair/capture.tar", [Placeholder("/srv/big", 9, "c" * 64, b"h", b"t")], ["/srv"],
                 manifest=Manifest((entry,)))
    args = json.loads(transport.calls[-1].stdin or b"")["args"]
    assert args == {"tar": "/run/vmrepair/capture.tar", "roots": ["/srv"], "placeholders": [{
        "path": "/srv/big", "size": 9, "sha256": "c" * 64, "head_b64": "aA==", "tail_b64": "dA==",
        "mode": 0o640, "uid": 7, "gid": 8, "mtime": 2.5}]}


def test_unpack_claiming_writes_outside_the_roots() -> None:
    agent, _ = _fake({"unpack": {"written": ["/etc/passwd"], "placeholders": [], "failed": []}})
    with pytest.raises(AgentError, match=r"inconsistent answer: wrote outside the roots: \['/etc/passwd'\]"):
        agent.unpack("/run/vmrepair/capture.tar", [], ["/srv"])


@pytest.mark.parametrize(("op", "result", "call", "message"), [
    ("write_file", _entry("/etc/x", sha256="b" * 64),
     lambda a: a.write_file("/etc/x", b"abc", mode=0o644, uid=0, gid=0), "wrote '/etc/x' with other content"),
    ("read_file", {"data_b64": base64.b64encode(b"0123456789").decode()},
     lambda a: a.read_file("/etc/x", max_bytes=4), "10 bytes, over the 4 asked"),
    ("remove_file", {"removed": True}, lambda a: a.remove_file("/etc/x"), "expected a null result"),
    ("big_files", {"files": [{"path": "/var/a", "size": 5, "is_open_by_writer": False}] * 3},
     lambda a: a.big_files(["/var"], min_bytes=1, limit=2), "3 files, over the limit of 2"),
    ("big_files", {"files": [{"path": "/etc/a", "size": 5, "is_open_by_writer": False}]},
     lambda a: a.big_files(["/var"], min_bytes=1, limit=2), "files outside the roots or too small"),
    ("jsonl_repair", {"path": "/var/log/x", "kept": 1, "repaired": 0, "quarantined": 0,
                      "quarantine_path": None, "backup_path": "/tmp/x.bak-1"},
     lambda a: a.jsonl_repair("/var/log/x"), "'/tmp/x.bak-1' is not beside '/var/log/x'"),
    ("jsonl_check", {"path": "/var/log/x", "exists": True, "total_lines": 1, "good_lines": 1,
                     "bad_lines": [{"line": 5, "reason": "x"}], "torn_tail": False},
     lambda a: a.jsonl_check("/var/log/x"), "line counts do not add up"),
    ("rotate_log", {"path": "/var/log/x", "archive": "/var/log/x.1.gz", "freed_bytes": 1,
                    "method": "truncate"},
     lambda a: a.rotate_log("/var/log/x", method="truncate"), "truncate made an archive"),
    ("disk_usage", {"mount": "/", "size_bytes": 1, "used_bytes": 1, "avail_bytes": 0, "used_pct": 250.0,
                    "inodes_total": 1, "inodes_used": 1, "inodes_pct": 1.0},
     lambda a: a.disk_usage("/"), "used_pct: Input should be less than or equal to 100"),
])
def test_answers_inconsistent_with_the_request(op: str, result: Any, call: Callable[[RemoteAgent], Any],
                                               message: str) -> None:
    agent, _ = _fake({op: result})
    with pytest.raises(AgentError, match=message) as info:
        call(agent)
    assert not isinstance(info.value, AgentFailedError)


# -- push --------------------------------------------------------------------------------------


def test_push_puts_into_remote_dir_only(tmp_path: Any) -> None:
    local = tmp_path / "capture.tar"
    local.write_bytes(b"tar")
    agent, transport = _fake({})
    assert agent.push(local, "capture.tar") == "/run/vmrepair/capture.tar"
    assert agent.push(local, "/run/vmrepair/other.tar") == "/run/vmrepair/other.tar"
    assert transport.modes["/run/vmrepair/capture.tar"] == 0o600
    for bad in ("/etc/cron.d/x", "../x", "/run/vmrepair/sub/x", f"agent-{SHA[:12]}.py"):
        with pytest.raises(AgentError, match="must be a file name in /run/vmrepair"):
            agent.push(local, bad)


def test_script_lost_in_a_reboot_is_uploaded_again_and_the_request_rerun() -> None:
    """/run is a tmpfs: after the host rebooted, python3 cannot open the cached script path."""
    calls = {"manifest": 0}

    def answer(op: str) -> Answer:
        calls[op] += 1
        if calls[op] == 2:
            gone = f"python3: can't open file '{SCRIPT}': [Errno 2] No such file or directory\n"
            return 2, b"", gone.encode()
        return _manifest()

    agent, transport = _fake(answer)
    agent.manifest(["/etc/a"])            # installs, runs
    assert agent.manifest(["/etc/a"]) == Manifest((), ())   # script gone: reinstalled, rerun once
    installs = [c.argv for c in transport.calls if c.argv[0] == "install"]
    assert len(installs) == 2 and calls["manifest"] == 3


def test_sweep_temps_answer_must_stay_inside_the_swept_directories() -> None:
    agent, _ = _fake({"sweep_temps": ["/etc/app/.vmrepair-0123456789abcdef.tmp"]})
    assert agent.sweep_temps(["/etc/app"]) == ["/etc/app/.vmrepair-0123456789abcdef.tmp"]
    agent, _ = _fake({"sweep_temps": ["/etc/shadow"]})
    with pytest.raises(AgentError, match="inconsistent answer: expected paths inside the swept directories"):
        agent.sweep_temps(["/etc/app"])


def test_a_manifest_listing_an_excluded_path_is_refused() -> None:
    """What the caller excluded (an ignored path) must not come back: it could reach a fix package."""
    agent, transport = _fake({"manifest": _manifest(_entry("/etc/app/x"), _entry("/etc/app/cache/y"))})
    with pytest.raises(AgentError, match=r"paths that were not asked for: \['/etc/app/cache/y'\]"):
        agent.manifest(["/etc/app"], exclude=["/etc/app/cache"])
    assert json.loads(transport.calls[-1].stdin or b"")["args"] == {"paths": ["/etc/app"],
                                                                    "exclude": ["/etc/app/cache"]}


# -- deb_meta --------------------------------------------------------------------------------------

DEB = "/var/cache/apt/archives/nginx-common_1.22.1-9_all.deb"


def _deb_entry(path: str, **changes: Any) -> dict[str, Any]:
    entry = {"path": path, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "uname": "root",
             "gname": "root"}
    return entry | changes


def test_deb_meta_returns_the_package_s_entries_and_absent_paths() -> None:
    answer = {"entries": [_deb_entry("/etc/a", mode=0o4755)], "absent": ["/etc/b"]}
    agent, transport = _fake({"deb_meta": answer})
    meta = agent.deb_meta(DEB, ["/etc/a", "/etc/b"])
    assert (meta.by_path()["/etc/a"].mode, meta.absent) == (0o4755, ("/etc/b",))
    sent = json.loads(transport.calls[-1].stdin or b"{}")["args"]
    assert sent == {"deb": DEB, "paths": ["/etc/a", "/etc/b"]}


@pytest.mark.parametrize(("result", "message"), [
    ({"entries": [_deb_entry("/root/.ssh/id_rsa")], "absent": ["/etc/b"]}, "paths that were not asked for"),
    ({"entries": [], "absent": ["/etc/a"]}, "every path asked about must be answered once"),
    ({"entries": [_deb_entry("/etc/a")], "absent": ["/etc/a", "/etc/b"]}, "every path asked about"),
    ({"entries": [_deb_entry("/etc/a", mode=0o17777)], "absent": ["/etc/b"]}, r"entries\.0\.mode"),
    ({"entries": [_deb_entry("/etc/a", uid="0")], "absent": ["/etc/b"]}, r"entries\.0\.uid"),
    ({"entries": [_deb_entry("/etc/a", extra=1)], "absent": ["/etc/b"]}, "Extra inputs are not permitted"),
])
def test_bad_deb_meta_answers(result: dict[str, Any], message: str) -> None:
    agent, _ = _fake({"deb_meta": result})
    with pytest.raises(AgentError, match=rf"^target\.example: agent deb_meta: .*{message}"):
        agent.deb_meta(DEB, ["/etc/a", "/etc/b"])


# -- deb_file --------------------------------------------------------------------------------------

def test_deb_file_returns_the_shipped_bytes_or_none() -> None:
    agent, transport = _fake({"deb_file": {"found": True, "data_b64": base64.b64encode(b"conf\n").decode()}})
    assert agent.deb_file(DEB, "/etc/a", max_bytes=100) == b"conf\n"
    assert json.loads(transport.calls[-1].stdin or b"{}")["args"] == {"deb": DEB, "path": "/etc/a",
                                                                      "max_bytes": 100}
    agent, _ = _fake({"deb_file": {"found": False}})
    assert agent.deb_file(DEB, "/etc/a", max_bytes=100) is None


@pytest.mark.parametrize(("result", "message"), [
    ({"found": True}, "data_b64 must be given when found is true"),
    ({"found": False, "data_b64": ""}, "data_b64 must be given when found is true"),
    ({"found": True, "data_b64": "!!"}, "not valid base64"),
    ({"found": True, "data_b64": base64.b64encode(b"x" * 101).decode()}, "more than the 100 bytes asked"),
    ({"found": "yes", "data_b64": None}, "found"),
])
def test_bad_deb_file_answers(result: dict[str, Any], message: str) -> None:
    agent, _ = _fake({"deb_file": result})
    with pytest.raises(AgentError, match=rf"^target\.example: agent deb_file: .*{message}"):
        agent.deb_file(DEB, "/etc/a", max_bytes=100)
