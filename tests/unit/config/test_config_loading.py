"""YAML -> safe_load -> pydantic, with every problem rendered as ``FILE: path.to.key: message``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from orchestrator.config.loading import MAX_YAML_BYTES, load_model, load_yaml_text
from orchestrator.config.settings import ConfigFile
from orchestrator.errors import ConfigError


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class _Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[_Item] = []


def _write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "libvirt_uri: test:///default\nssh:\n  connect_timeout_s: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.message.startswith(f"{path}: malformed YAML at line ")
    assert info.value.file == str(path)


def test_malformed_yaml_line_number_is_one_based(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: 1\nb: 2\nc: @bad\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line 3, column 4"):
        load_yaml_text(path)


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "ssh:\n  bogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.message == f"{path}: ssh.bogus: unknown key (not allowed here; check spelling)"


def test_wrong_type_names_the_key_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "ssh:\n  connect_timeout_s: soon\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.message.startswith(f"{path}: ssh.connect_timeout_s: ")
    assert "number" in info.value.message


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "vm:\n  accel: fast\n  boot_timeout_s: -1\nnope: 1\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    keys = [line.split(": ")[1] for line in info.value.message.splitlines()]
    assert sorted(keys) == ["nope", "vm.accel", "vm.boot_timeout_s"]


def test_list_index_is_rendered_in_brackets(tmp_path: Path) -> None:
    path = _write(tmp_path, "items:\n  - size: 1\n  - size: big\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, _Listing)
    assert info.value.message.startswith(f"{path}: items[1].size: ")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert load_model(path, ConfigFile) == ConfigFile()


def test_comment_only_file_gives_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing configured yet\n")
    assert load_model(path, ConfigFile) == ConfigFile()


def test_file_larger_than_cap_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.message == f"{path}: file is larger than {MAX_YAML_BYTES} bytes"
    assert info.value.remedy is not None


def test_file_exactly_at_cap_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "#" * (MAX_YAML_BYTES - 1) + "\n")
    assert load_model(path, ConfigFile) == ConfigFile()


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"),
                                            ("42\n", "int")])
def test_non_mapping_top_level_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    assert info.value.message == f"{path}: (top level): expected a mapping of keys, got {kind}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_yaml_text(path)
    assert info.value.message == f"{path}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(f"{tmp_path}: cannot read: ")):
        load_yaml_text(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 9\)"):
        load_yaml_text(path)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = _write(tmp_path, "x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_yaml_text(path)
