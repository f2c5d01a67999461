"""Hostile config and playbook files (issue 13, items 3, 8, 9): every case runs the real CLI and asserts
the exit code (2: bad input or config) and the message a user sees, naming the file, the key or line,
and the remedy where there is one. Never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.hostile.conftest import TEST_URI, CliResult

Cli = Callable[..., CliResult]
EXIT_CONFIG = 2
#: "A billion laughs": nine levels of ten aliases each, 10**9 values once expanded.
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]"
                    for i in range(8)]) + "\n"


def _flat(text: str) -> str:
    """rich wraps long lines at the console width; compare messages without the wrapping."""
    return " ".join(text.split())


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging the suite if a case blocks (a FIFO read, say)."""
    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the case did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _config(env: Path, text: str | bytes) -> Path:
    path = env / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _refused(cli: Cli, env: Path, text: str | bytes, *expected: str) -> CliResult:
    path = _config(env, text)
    with deadline(20):
        result = cli("fixes", "list")
    assert result.code == EXIT_CONFIG, result.text
    err = _flat(result.err)
    assert f"error: {path}: " in err
    for part in expected:
        assert _flat(part.format(path=path)) in err, err
    return result


# -- malformed YAML of every kind ------------------------------------------------------------------

MALFORMED = [
    pytest.param("vm: [1, 2\n", "malformed YAML at line 2, column 1", id="unclosed-flow"),
    pytest.param("vm:\n\taccel: tcg\n", "malformed YAML at line 2", id="tab-indent"),
    pytest.param("libvirt_uri: a\nlibvirt_uri: b\n",
                 "malformed YAML at line 2, column 1: duplicate key 'libvirt_uri' (first at line 1)",
                 id="duplicate-key"),
    pytest.param("vm:\n  accel: tcg\n  accel: kvm\n",
                 "at line 3, column 3: duplicate key 'accel' (first at line 2)", id="duplicate-nested-key"),
    pytest.param("repair: {load: true, load: false}\n", "duplicate key 'load'", id="duplicate-flow-key"),
    pytest.param("[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64 levels", id="deep-flow"),
    pytest.param("".join(f"{' ' * i}k:\n" for i in range(300)), "nested deeper than 64 levels",
                 id="deep-block"),
    pytest.param(BOMB, "expands to more than 100000 values once aliases are followed", id="alias-bomb"),
    pytest.param("vm: &a [*a]\n", "alias *a refers to the node that contains it", id="recursive-alias"),
    pytest.param("vm: *nowhere\n", "found undefined alias 'nowhere'", id="undefined-alias"),
    pytest.param("vm: !!python/object/apply:os.system ['true']\n", "could not determine a constructor",
                 id="python-tag"),
    pytest.param("libvirt_uri: a\n---\nlibvirt_uri: b\n",
                 "expected a single document in the stream, but found another document", id="two-documents"),
    pytest.param("mirror: 2024-13-45\n", "malformed YAML: month must be in 1..12", id="impossible-date"),
    pytest.param("mirror: a\x00b\n", "malformed YAML", id="nul-byte"),
    pytest.param(b"mirror: caf\xe9\n", "not UTF-8 text (byte 11)", id="latin1"),
    pytest.param("- a\n- b\n", "(top level): expected a mapping of keys, got list", id="top-level-list"),
    pytest.param("just words\n", "(top level): expected a mapping of keys, got str", id="top-level-str"),
    pytest.param("# " + "x" * 262144 + "\n", "file is larger than 262144 bytes", id="oversized"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_yaml(cli: Cli, hostile_env: Path, text: str | bytes, message: str) -> None:
    _refused(cli, hostile_env, text, message)


def test_alias_bomb_with_debug_is_refused_fast(hostile_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Took 45 s and 669 MB rendering the error; --debug shows a traceback on purpose, so main() is
    called directly instead of through the ``cli`` fixture (which fails on any traceback)."""
    from orchestrator.cli.main import main

    _config(hostile_env, BOMB)
    started = time.monotonic()
    assert main(["--debug", "fixes", "list"]) == EXIT_CONFIG
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "expands to more than 100000 values" in _flat(err)
    assert len(err) < 50_000


@pytest.mark.parametrize("text", ["'[/x]': 1\n", "libvirt_uri: '[bold]x[/]'\nlibvirt_uri: y\n"])
def test_markup_in_an_error_with_debug(hostile_env: Path, capsys: pytest.CaptureFixture[str],
                                       text: str) -> None:
    """--debug prints the traceback too (on purpose), so main() is called directly; neither the traceback
    nor the message may be read as markup."""
    from orchestrator.cli.main import main

    path = _config(hostile_env, text)
    assert main(["--debug", "fixes", "list"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "MarkupError" not in err
    assert f"error: {path}: " in _flat(err)


# -- the config file is not a file ------------------------------------------------------------------

def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.yaml")


def _loop(path: Path) -> None:
    path.symlink_to(path)


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(_fifo, "{path}: not a regular file (a FIFO)", id="fifo"),
    pytest.param(Path.mkdir, "{path}: cannot read: is a directory", id="directory"),
    pytest.param(_dangling, "{path}: file not found", id="dangling-symlink"),
    pytest.param(_loop, "{path}: cannot read: Too many levels of symbolic links", id="symlink-loop"),
])
def test_config_path_that_is_no_file(cli: Cli, hostile_env: Path, monkeypatch: pytest.MonkeyPatch,
                                     make: Callable[[Path], object], message: str) -> None:
    path = hostile_env / "odd.yaml"
    make(path)
    monkeypatch.setenv("VMREPAIR_CONFIG", str(path))
    with deadline(10):
        result = cli("fixes", "list")
    assert result.code == EXIT_CONFIG
    assert message.format(path=path) in _flat(result.err)


def test_config_is_a_character_device(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMREPAIR_CONFIG", "/dev/zero")
    with deadline(10):
        result = cli("fixes", "list")
    assert (result.code, _flat(result.err)) == (EXIT_CONFIG,
                                                "error: /dev/zero: not a regular file (a character device) "
                                                "remedy: name a YAML file")


# -- unknown keys, wrong types, bad values per key ----------------------------------------------------

UNKNOWN = "unknown key (not allowed here; check spelling)"
FINITE = "Input should be a finite number"
NOT_ABSOLUTE = "Value error, not an absolute path"
NOT_A_UNIT = "Value error, not a systemd unit name"
COMPONENT = "watch:\n  components:\n    - {{name: web, units: ['{}']}}\n"
#: id -> (config text after a valid libvirt_uri line, "key: message" the user reads after the file name)
BAD_VALUES = {
    "top-level-typo": ("libvirt_url: x\n", f"libvirt_url: {UNKNOWN}"),
    "nested-typo": ("vm: {acel: tcg}\n", f"vm.acel: {UNKNOWN}"),
    "markup-key": ("'[/x]': 1\n", f"[/x]: {UNKNOWN}"),
    "markup-style-key": ("'[bold red]boom[/]': 1\n", f"[bold red]boom[/]: {UNKNOWN}"),
    "section-not-mapping": ("vm: tcg\n", "vm: Input should be a valid dictionary"),
    "bad-enum": ("vm: {accel: warp}\n", "vm.accel: Input should be 'auto', 'kvm' or 'tcg'"),
    "not-a-number": ("ssh: {connect_timeout_s: soon}\n",
                     "ssh.connect_timeout_s: Input should be a valid number"),
    "zero-timeout": ("ssh: {connect_timeout_s: 0}\n",
                     "ssh.connect_timeout_s: Input should be greater than 0"),
    "nan-stable-period": ("repair: {stable_period_s: .nan}\n", f"repair.stable_period_s: {FINITE}"),
    "inf-notice": ("reboot: {notice_s: .inf}\n", f"reboot.notice_s: {FINITE}"),
    "negative-period": ("repair: {stable_period_s: -1}\n",
                        "repair.stable_period_s: Input should be greater than or equal to 0"),
    "root-as-allowed-root": ("repair: {allowed_roots: ['/']}\n",
                             "repair.allowed_roots[0]: Value error, '/': the whole file system cannot be an "
                             "allowed root"),
    "relative-allowed-root": ("repair: {allowed_roots: [relative]}\n",
                              "repair.allowed_roots[0]: Value error, 'relative': not an absolute path"),
    "dotdot-allowed-root": ("repair: {allowed_roots: ['/etc/../root']}\n",
                            "repair.allowed_roots[0]: Value error, '/etc/../root': not a normalized path "
                            "(write it as '/root')"),
    "allowed-roots-not-a-list": ("repair: {allowed_roots: /etc}\n",
                                 "repair.allowed_roots: Input should be a valid list"),
    "relative-audit-path": ("audit: {path: audit.jsonl}\n",
                            f"audit.path: {NOT_ABSOLUTE}: 'audit.jsonl' (write it from /)"),
    "markup-audit-path": ("audit: {path: '[/x]'}\n", f"audit.path: {NOT_ABSOLUTE}: '[/x]'"),
    "relative-state-dir": ("state_dir: var/lib/vmrepair\n", f"state_dir: {NOT_ABSOLUTE}"),
    "relative-socket": ("daemon: {socket: api.sock}\n", f"daemon.socket: {NOT_ABSOLUTE}"),
    "relative-known-hosts": ("targets: {known_hosts: known_hosts}\n", f"targets.known_hosts: {NOT_ABSOLUTE}"),
    "negative-uid": ("daemon: {allowed_uids: [-1]}\n",
                     "daemon.allowed_uids[0]: Input should be greater than or equal to 0"),
    "uid-minus-one": ("daemon: {allowed_uids: [4294967295]}\n",
                      "daemon.allowed_uids[0]: Input should be less than or equal to 4294967294"),
    "uid-as-string": ("daemon: {allowed_uids: ['1000']}\n",
                      "daemon.allowed_uids[0]: Input should be a valid integer"),
    "uids-not-a-list": ("daemon: {allowed_uids: 1000}\n",
                        "daemon.allowed_uids: Input should be a valid tuple"),
    "bad-daemon-policy": ("daemon: {policy: yolo}\n",
                          "daemon.policy: Input should be 'auto-repair', 'ask' or"),
    "zero-connections": ("daemon: {max_connections: 0}\n",
                         "daemon.max_connections: Input should be greater than or equal to 1"),
    "bad-reboot-policy": ("reboot: {policy: whenever}\n",
                          "reboot.policy: Input should be 'automatic', 'window'"),
    "bad-timezone": ("reboot: {timezone: Mars/Olympus}\n",
                     "reboot.timezone: Value error, unknown time zone 'Mars/Olympus'"),
    "timezone-path": ("reboot: {timezone: ../../etc/passwd}\n",
                      "reboot.timezone: Value error, unknown time zone"),
    "window-policy-no-window": ("reboot: {policy: window, windows: []}\n",
                                "reboot: Value error, policy `window` needs at least one entry in `windows`"),
    "ftp-webhook": ("reboot: {notifiers: [{kind: webhook, url: 'ftp://x'}]}\n",
                    "reboot.notifiers[0].WebhookNotifierSettings.url: String should match pattern"),
    "empty-notifier-argv": ("reboot: {notifiers: [{kind: command, argv: []}]}\n",
                            "reboot.notifiers[0].CommandNotifierSettings.argv: List should have at least "
                            "1 item"),
    "too-many-attempts": ("health: {poll_attempts: 99}\n",
                          "health.poll_attempts: Input should be less than or equal to 10"),
    "unit-option": (COMPONENT.format("-x"), f"watch.components[0].units[0]: {NOT_A_UNIT}: '-x'"),
    "unit-long-option": (COMPONENT.format("--no-block"),
                         f"watch.components[0].units[0]: {NOT_A_UNIT}: '--no-block'"),
    "unit-with-space": (COMPONENT.format("a b.service"), f"watch.components[0].units[0]: {NOT_A_UNIT}"),
    "markup-component-name": ("watch:\n  components:\n    - {name: '[/x]'}\n",
                              "watch.components[0].name: String should match pattern"),
}


@pytest.mark.parametrize(("text", "message"),
                         [pytest.param(*case, id=name) for name, case in BAD_VALUES.items()])
def test_bad_values_name_the_key(cli: Cli, hostile_env: Path, text: str, message: str) -> None:
    _refused(cli, hostile_env, f"libvirt_uri: {TEST_URI}\n{text}", "{path}: " + message)


def test_five_hundred_problems_are_capped(cli: Cli, hostile_env: Path) -> None:
    result = _refused(cli, hostile_env, "".join(f"key{i}: 1\n" for i in range(500)),
                      "{path}: ... and 480 more problems")
    assert len(result.err) < 20_000


def test_a_huge_key_is_clipped(cli: Cli, hostile_env: Path) -> None:
    result = _refused(cli, hostile_env, "? " + "k" * 100_000 + "\n: 1\n", "... (99800 more characters)")
    assert len(result.err) < 2_000


# -- the environment ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["state", "./state", "[/x]"])
def test_relative_state_dir_in_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VMREPAIR_STATE_DIR", value)
    result = cli("fixes", "list")
    assert result.code == EXIT_CONFIG
    assert _flat(result.err) == (f"error: VMREPAIR_STATE_DIR={value}: not an absolute path remedy: set it "
                                 "to an absolute path, e.g. /var/lib/vmrepair")


def test_missing_explicit_config(cli: Cli, hostile_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile_env / "[/x]" / "config.yaml"
    monkeypatch.setenv("VMREPAIR_CONFIG", str(path))
    result = cli("fixes", "list")
    assert (result.code, _flat(result.err)) == (EXIT_CONFIG, f"error: {path}: file not found")


# -- numeric options --------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--target", "local", "--stable-period=nan"],
     "argument --stable-period: 'nan' is not a number of seconds between 0 and 3600"),
    (["run", "--target", "local", "--stable-period=-1"],
     "argument --stable-period: '-1' is not a number of seconds between 0 and 3600"),
    (["run", "--target", "local", "--reboot-notice=inf"],
     "argument --reboot-notice: 'inf' is not a number of seconds between 0 and 604800"),
    (["run", "--target", "local", "--reboot-notice=-1e-9"],
     "argument --reboot-notice: '-1e-9' is not a number of seconds between 0 and 604800"),
    (["demo", "--stable-period=1e999"], "argument --stable-period: '1e999' is not a number of seconds"),
    (["vm", "up", "x", "--boot-timeout=0"],
     "argument --boot-timeout: '0' is not a number of seconds more than 0 and at most 3600"),
    (["vm", "exec", "--timeout=NaN", "x", "--", "true"],
     "argument --timeout: 'NaN' is not a number of seconds"),
])
def test_numeric_options_are_checked_when_parsed(cli: Cli, argv: list[str], message: str) -> None:
    result = cli(*argv)
    assert result.code == EXIT_CONFIG
    assert message in _flat(result.err)


# -- hostile playbooks ------------------------------------------------------------------------------

PLAYBOOK = """name: demo
description: a demo
applies_to: {components: ['*'], kinds: [config_invalid]}
strategies:
  - name: demo-restart
    description: restart
    for_causes: ['*']
    effectiveness: 0.5
    steps:
      - unit: {action: restart, name: '{unit}'}
"""

PLAYBOOKS = [
    pytest.param(PLAYBOOK + "name: again\n", "duplicate key 'name' (first at line 1)",
                 id="duplicate-name-key"),
    pytest.param("[" * 3000 + "]" * 3000, "nested deeper than 64 levels", id="deep"),
    pytest.param(BOMB, "expands to more than 100000 values", id="alias-bomb"),
    pytest.param("- just\n- a list\n", "(top level): expected a mapping of keys, got list", id="list"),
    pytest.param(PLAYBOOK.replace("unit: {action: restart", "teleport: {action: restart"),
                 "strategies[0].steps[0]", id="unknown-step-kind"),
    pytest.param(PLAYBOOK.replace("name: demo\n", "name: '[/x]'\n", 1), "name: String should match pattern",
                 id="markup-name"),
    pytest.param(PLAYBOOK.replace("effectiveness: 0.5", "effectiveness: .nan"),
                 "strategies[0].effectiveness: Input should be a finite number",
                 id="nan-effectiveness"),
    pytest.param(PLAYBOOK + "x" * 70_000, "file is larger than 65536 bytes", id="oversized"),
    pytest.param(b"name: caf\xe9\n", "not UTF-8 text", id="latin1"),
]


@pytest.mark.parametrize(("text", "message"), PLAYBOOKS)
def test_hostile_playbook_is_refused_by_lint(cli: Cli, hostile_env: Path, text: str | bytes,
                                             message: str) -> None:
    path = hostile_env / "[" / "x]-playbook.yaml"  # a path that reads as a rich closing tag: [/x]
    path.parent.mkdir()
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = cli("playbook", "lint", str(path))
    assert result.code == EXIT_CONFIG, result.text
    err = _flat(result.err)
    assert f"error: {path}: " in err
    assert message in err


def test_playbook_fifo_is_refused_without_hanging(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "pipe.yaml"
    os.mkfifo(path)
    with deadline(10):
        result = cli("playbook", "lint", str(path))
    assert (result.code, _flat(result.err)) == (EXIT_CONFIG, f"error: {path}: not a regular file (a FIFO) "
                                                "remedy: name a YAML file")


def _dropin_dir(env: Path) -> Path:
    directory = env / "playbooks.d"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    config = env / "config.yaml"
    config.write_text(config.read_text() + f"playbooks_dropin_dir: {directory}\n")
    return directory


def test_dropin_world_writable(cli: Cli, hostile_env: Path) -> None:
    directory = _dropin_dir(hostile_env)
    directory.chmod(0o777)
    result = cli("playbook", "list")
    assert result.code == EXIT_CONFIG
    assert _flat(result.err) == (f"error: {directory}: writable by every user; refusing to load playbooks "
                                 f"from it remedy: chmod o-w {directory}")


def test_dropin_dangling_symlink(cli: Cli, hostile_env: Path) -> None:
    directory = _dropin_dir(hostile_env)
    (directory / "gone.yaml").symlink_to(directory / "nowhere.yaml")
    result = cli("playbook", "list")
    assert result.code == EXIT_CONFIG
    assert _flat(result.err) == f"error: {directory / 'gone.yaml'}: cannot read: No such file or directory"


def test_dropin_fifo(cli: Cli, hostile_env: Path) -> None:
    directory = _dropin_dir(hostile_env)
    os.mkfifo(directory / "pipe.yaml", 0o600)
    with deadline(10):
        result = cli("playbook", "list")
    assert result.code == EXIT_CONFIG
    assert f"error: {directory / 'pipe.yaml'}: not a regular file (a FIFO)" in _flat(result.err)


def test_dropin_duplicate_strategy_of_a_shipped_playbook(cli: Cli, hostile_env: Path) -> None:
    directory = _dropin_dir(hostile_env)
    shadowing = PLAYBOOK.replace("name: demo-restart", "name: disk-compress-big-logs")
    (directory / "mine.yaml").write_text(shadowing)
    result = cli("playbook", "list")
    assert result.code == EXIT_CONFIG
    assert (f"{directory / 'mine.yaml'}: strategies[0].name: strategy 'disk-compress-big-logs' is already "
            "defined in") in _flat(result.err)
