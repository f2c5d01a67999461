"""Hostile YAML never gets past the loader as anything but a ConfigError naming the file (issue 13,
item 8): duplicate keys, deep nesting, alias bombs, FIFOs and devices, bad timestamps, huge errors."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from orchestrator.config.loading import MAX_ERROR_LINES, load_model, load_yaml_text
from orchestrator.config.settings import ConfigFile
from orchestrator.config.strict_yaml import MAX_DEPTH, MAX_EXPANDED_NODES
from orchestrator.errors import ConfigError

#: "A billion laughs": nine levels of ten aliases each, 10**9 values once expanded.
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]"
                    for i in range(8)])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.file == str(path)
    return info.value


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "libvirt_uri: test:///default\nvm:\n  accel: tcg\nlibvirt_uri: qemu:///system\n")
    assert _error(path).message == (f"{path}: malformed YAML at line 4, column 1: duplicate key "
                                    "'libvirt_uri' (first at line 1)")


def test_duplicate_nested_key_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "vm:\n  accel: tcg\n  accel: kvm\n")
    assert "at line 3, column 3: duplicate key 'accel' (first at line 2)" in _error(path).message


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = _write(tmp_path, "x: &base {accel: tcg, boot_timeout_s: 10}\n")
    assert load_yaml_text(path) == {"x": {"accel": "tcg", "boot_timeout_s": 10}}
    path = _write(tmp_path, "base: &b {accel: tcg}\nvm: {<<: *b, accel: kvm}\n")
    assert load_yaml_text(path) == {"base": {"accel": "tcg"}, "vm": {"accel": "kvm"}}


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000,
                                  "".join(f"{' ' * i}k:\n" for i in range(500)) + " " * 500 + "v\n",
                                  "- " * 3000 + "x\n"])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    assert f"nested deeper than {MAX_DEPTH} levels" in _error(path).message


def test_nesting_at_the_cap_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    assert load_yaml_text(path) is not None


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = _write(tmp_path, BOMB)
    started = time.monotonic()
    message = _error(path).message
    assert f"expands to more than {MAX_EXPANDED_NODES} values once aliases are followed" in message
    assert time.monotonic() - started < 2


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "vm: &a [*a]\n")
    assert "alias *a refers to the node that contains it" in _error(path).message


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    os.mkfifo(path)
    result: list[BaseException] = []

    def read() -> None:
        try:
            load_yaml_text(path)
        except ConfigError as exc:
            result.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # unblock the reader before failing
        pytest.fail("reading a FIFO as a config file hangs")
    assert str(result[0]) == f"{path}: not a regular file (a FIFO)"


def test_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^/dev/zero: not a regular file \(a character device\)$"):
        load_yaml_text(Path("/dev/zero"))


@pytest.mark.parametrize("value", ["2024-13-45", "2024-02-30", "2024-01-01 25:00:00"])
def test_impossible_timestamps_are_malformed_yaml(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"mirror: {value}\n")
    assert _error(path).message.startswith(f"{path}: malformed YAML: ")


def test_error_rendering_is_capped(tmp_path: Path) -> None:
    path = _write(tmp_path, "".join(f"key{i}: {'v' * 300}\n" for i in range(500)))
    message = _error(path).message
    lines = message.splitlines()
    assert len(lines) == MAX_ERROR_LINES + 1
    assert lines[-1] == f"{path}: ... and {500 - MAX_ERROR_LINES} more problems"
    assert len(message) < 300 * MAX_ERROR_LINES


def test_huge_key_is_clipped_in_the_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "? " + "k" * 100_000 + "\n: 1\n")  # an explicit key has no length limit
    message = _error(path).message
    assert message.endswith(": unknown key (not allowed here; check spelling)")
    assert len(message) < 1000
