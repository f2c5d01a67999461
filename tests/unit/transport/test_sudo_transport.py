"""SudoTransport: root through `sudo -n --` over a non-root login, files staged in a private directory."""

from __future__ import annotations

import getpass
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.errors import FileTransferError, SudoError
from orchestrator.transport.fake import FakeTransport
from orchestrator.transport.local import LocalTransport
from orchestrator.transport.stream import CommandStream
from orchestrator.transport.sudo import GET_SCRIPT, PUT_SCRIPT, TOO_LARGE_EXIT, SudoTransport

STAGE = "/tmp/tmp.AbCdEf1234"
STAGED = f"{STAGE}/payload"
GRANT = ("let deploy run commands as root without a password: put the line `deploy ALL=(root) NOPASSWD:"
         " ALL` in /etc/sudoers.d/vmrepair (edit it with visudo -f), or log in as root")


def _host(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """A host where sudo works and mktemp -d makes STAGE."""
    if argv == ("mktemp", "-d"):
        return 0, f"{STAGE}\n".encode(), b""
    return 0, b"", b""


def _sudo(inner: FakeTransport) -> SudoTransport:
    return SudoTransport(inner, login_user="deploy")


def _assert_no_path_in_scripts(argvs: list[tuple[str, ...]], *paths: str) -> None:
    for argv in argvs:
        if "-c" in argv:
            script = argv[argv.index("-c") + 1]
            assert all(path not in script for path in paths), script


def test_commands_run_through_sudo_and_report_the_callers_argv() -> None:
    inner = FakeTransport(lambda argv, stdin: (3, b"out", b"err"))
    result = _sudo(inner).run(["systemctl", "is-active", "nginx"], stdin=b"x", timeout=7.0)
    assert inner.argvs == [("sudo", "-n", "--", "systemctl", "is-active", "nginx")]
    assert (inner.calls[0].stdin, inner.calls[0].timeout) == (b"x", 7.0)
    assert result.argv == ("systemctl", "is-active", "nginx")
    assert (result.exit_status, result.stdout) == (3, b"out")


def test_check_raises_on_the_commands_own_failure() -> None:
    inner = FakeTransport(lambda argv, stdin: (2, b"", b"no such unit"))
    with pytest.raises(Exception, match="exited 2: no such unit"):
        _sudo(inner).check(["systemctl", "cat", "x"])


@pytest.mark.parametrize("said", [
    b"sudo: a password is required\n",
    b"sudo: a terminal is required to read the password; either use -S\n",
    b"deploy is not in the sudoers file.  This incident will be reported.\n",
    b"Sorry, user deploy is not allowed to execute '/usr/bin/id' as root on h.\n",
])
def test_sudo_refusal_says_how_to_grant_nopasswd(said: bytes) -> None:
    inner = FakeTransport(lambda argv, stdin: (1, b"", said), host="deploy@db1:22")
    with pytest.raises(SudoError) as info:
        _sudo(inner).run(["id"])
    first_line = said.decode().strip()
    assert info.value.message == ("deploy@db1:22: sudo refused to run a command as root for deploy: "
                                  f"{first_line}")
    assert info.value.remedy == GRANT


def test_a_refusal_after_sudos_warnings_is_still_recognised() -> None:
    said = b"sudo: unable to resolve host db1: Name or service not known\nsudo: a password is required\n"
    inner = FakeTransport(lambda argv, stdin: (1, b"", said), host="h")
    with pytest.raises(SudoError) as info:
        _sudo(inner).run(["id"])
    assert info.value.message == ("h: sudo refused to run a command as root for deploy: sudo: a password is"
                                  " required")


def test_sudos_warnings_do_not_hide_the_commands_own_result() -> None:
    said = b"sudo: unable to resolve host db1: Name or service not known\n"
    inner = FakeTransport(lambda argv, stdin: (0, b"ok", said))
    assert _sudo(inner).run(["id"]).stdout == b"ok"


def test_requiretty_gets_its_own_remedy() -> None:
    inner = FakeTransport(lambda argv, stdin: (1, b"", b"sudo: sorry, you must have a tty to run sudo\n"))
    with pytest.raises(SudoError) as info:
        _sudo(inner).run(["id"])
    assert info.value.remedy == "add `Defaults:deploy !requiretty` to the sudoers file (visudo)"


def test_missing_sudo_is_named() -> None:
    inner = FakeTransport(lambda argv, stdin: (127, b"", b"sh: 1: sudo: not found\n"), host="h")
    with pytest.raises(SudoError) as info:
        _sudo(inner).run(["id"])
    assert info.value.message == "h: sudo is not installed (logged in as deploy, not root)"
    assert info.value.remedy == "install sudo on the host (apt-get install sudo), then " + GRANT


def test_a_program_sudo_cannot_find_exits_127_like_on_other_transports() -> None:
    inner = FakeTransport(lambda argv, stdin: (1, b"", b"sudo: python3: command not found\n"))
    result = _sudo(inner).run(["python3", "-V"])
    assert result.exit_status == 127
    assert result.stderr == b"sudo: python3: command not found\n"


def test_a_command_failing_with_status_1_is_not_a_sudo_refusal() -> None:
    inner = FakeTransport(lambda argv, stdin: (1, b"", b"grep: /etc/x: No such file or directory\n"))
    assert _sudo(inner).run(["grep", "a", "/etc/x"]).exit_status == 1


def test_put_file_stages_privately_then_installs_as_root(tmp_path: Path) -> None:
    local = tmp_path / "agent.py"
    local.write_bytes(b"print('hi')\n")
    remote = "/run/vmrepair agent/$(id) 'x'.py"
    inner = FakeTransport(_host)
    _sudo(inner).put_file(local, remote, mode=0o700)
    assert inner.argvs == [
        ("mktemp", "-d"),
        ("sudo", "-n", "--", "sh", "-c", PUT_SCRIPT, "sh", STAGED, remote, "/run/vmrepair agent", "0700"),
        ("rm", "-rf", "--", STAGE),
    ]
    assert inner.files == {STAGED: b"print('hi')\n"}
    _assert_no_path_in_scripts(inner.argvs, remote, STAGE, "/run")


def test_put_file_without_mode_passes_an_empty_mode() -> None:
    inner = FakeTransport(_host)
    local = Path(__file__)
    _sudo(inner).put_file(local, "/etc/x.conf")
    assert inner.argvs[1][-1] == ""
    assert inner.argvs[1][-2] == "/etc"


def test_failed_install_names_the_file_and_still_cleans_up(tmp_path: Path) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:3] == ("sudo", "-n", "--"):
            return 1, b"", b"mktemp: failed to create file via template: No such file or directory\n"
        return _host(argv, stdin)

    inner = FakeTransport(handler, host="h")
    local = tmp_path / "f"
    local.write_bytes(b"x")
    with pytest.raises(FileTransferError) as info:
        _sudo(inner).put_file(local, "/nowhere/f")
    assert info.value.message == ("h: install /nowhere/f as root failed (exit 1): mktemp: failed to create"
                                  " file via template: No such file or directory")
    assert inner.argvs[-1] == ("rm", "-rf", "--", STAGE)


def test_unusable_mktemp_output_is_refused() -> None:
    inner = FakeTransport(lambda argv, stdin: (0, b"relative/dir\n", b""), host="h")
    with pytest.raises(FileTransferError, match="cannot make a private directory as deploy"):
        _sudo(inner).put_file(Path(__file__), "/etc/x")
    assert inner.argvs == [("mktemp", "-d")]


def test_get_file_copies_as_root_and_downloads_the_staged_copy(tmp_path: Path) -> None:
    inner = FakeTransport(_host, files={STAGED: b"log line\n"})
    local = tmp_path / "copy"
    _sudo(inner).get_file("/var/log/a b.log", local, max_bytes=100)
    assert local.read_bytes() == b"log line\n"
    assert inner.argvs == [
        ("mktemp", "-d"),
        ("sudo", "-n", "--", "sh", "-c", GET_SCRIPT, "sh", "/var/log/a b.log", STAGED, "deploy", "100"),
        ("rm", "-rf", "--", STAGE),
    ]
    _assert_no_path_in_scripts(inner.argvs, "/var/log", STAGE)


def test_get_file_of_a_file_larger_than_allowed_is_refused_before_copying(tmp_path: Path) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if argv[:3] == ("sudo", "-n", "--"):
            return TOO_LARGE_EXIT, b"5000\n", b""
        return _host(argv, stdin)

    inner = FakeTransport(handler, host="h")
    with pytest.raises(FileTransferError) as info:
        _sudo(inner).get_file("/var/log/big", tmp_path / "x", max_bytes=10)
    assert info.value.message == "h: /var/log/big is 5000 bytes, larger than the 10 allowed"
    assert inner.argvs[-1] == ("rm", "-rf", "--", STAGE)


class _StreamRecorder(FakeTransport):
    opened: list[tuple[str, ...]]

    def open_stream(self, argv: Sequence[str]) -> CommandStream | None:
        self.opened = [*getattr(self, "opened", []), tuple(argv)]
        return None


def test_open_stream_wraps_the_argv_after_asking_sudo_once() -> None:
    inner = _StreamRecorder()
    sudo = _sudo(inner)
    assert sudo.open_stream(["python3", "-I", "agent.py", "--serve"]) is None
    sudo.open_stream(["python3", "-I", "agent.py", "--serve"])
    assert inner.argvs == [("sudo", "-n", "--", "true")]
    assert inner.opened == [("sudo", "-n", "--", "python3", "-I", "agent.py", "--serve")] * 2


def test_open_stream_reports_a_sudo_refusal_instead_of_a_dead_stream() -> None:
    inner = _StreamRecorder(lambda argv, stdin: (1, b"", b"sudo: a password is required\n"))
    with pytest.raises(SudoError):
        _sudo(inner).open_stream(["python3"])
    assert getattr(inner, "opened", []) == []


def test_close_closes_the_login_transport() -> None:
    inner = FakeTransport()
    _sudo(inner).close()
    assert inner.is_closed


# -- the scripts themselves, run by a real sh: a `sudo` on PATH that runs its argv as this user -------


@pytest.fixture
def local_sudo(tmp_path: Path) -> SudoTransport:
    shims = tmp_path / "shims"
    shims.mkdir()
    fake_sudo = shims / "sudo"
    fake_sudo.write_text('#!/bin/sh\n[ "$1" = -n ] && [ "$2" = -- ] || exit 99\nshift 2\nexec "$@"\n')
    fake_sudo.chmod(0o755)
    inner = LocalTransport(env_overrides={"PATH": f"{shims}:{os.environ['PATH']}"})
    return SudoTransport(inner, login_user=getpass.getuser())


def test_scripts_install_and_fetch_files_with_hostile_names(
    local_sudo: SudoTransport, tmp_path: Path
) -> None:
    target_dir = tmp_path / "dest dir $(touch pwned)"
    target_dir.mkdir()
    target = target_dir / "it's; rm -rf x.conf"
    target.write_bytes(b"old")
    source = tmp_path / "new"
    source.write_bytes(b"new contents\n")

    local_sudo.put_file(source, str(target), mode=0o640)
    assert target.read_bytes() == b"new contents\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target_dir.iterdir()) == [target.name]  # no temp file left
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()

    back = tmp_path / "back"
    local_sudo.get_file(str(target), back, max_bytes=100)
    assert back.read_bytes() == b"new contents\n"

    with pytest.raises(FileTransferError, match=r"is 13 bytes, larger than the 5 allowed"):
        local_sudo.get_file(str(target), tmp_path / "small", max_bytes=5)
    with pytest.raises(FileTransferError, match=r"copy /nonexistent as root failed \(exit 1\)"):
        local_sudo.get_file("/nonexistent", tmp_path / "none")


def test_scripts_without_mode_install_private_files(local_sudo: SudoTransport, tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(b"x")
    target = tmp_path / "t"
    local_sudo.put_file(source, str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_staging_directories_are_removed(local_sudo: SudoTransport, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    inner = local_sudo.inner
    real_run = inner.run

    def spying_run(argv: Sequence[str], **kwargs: object) -> object:
        result = real_run(argv, **kwargs)  # type: ignore[arg-type]
        if list(argv) == ["mktemp", "-d"]:
            made.append(result.stdout_text.strip())
        return result

    monkeypatch.setattr(inner, "run", spying_run)
    source = tmp_path / "s"
    source.write_bytes(b"x")
    local_sudo.put_file(source, str(tmp_path / "t"))
    local_sudo.get_file(str(tmp_path / "t"), tmp_path / "u")
    assert len(made) == 2
    assert not any(Path(d).exists() for d in made)
