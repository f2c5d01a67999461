"""config.yaml plus the drop-ins of config_dropin_dir: merge order, errors naming the drop-in, trust
checks, and where each value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import settings as settings_module
from orchestrator.config.dropins import deep_merge, list_dropins
from orchestrator.config.settings import load_config, load_settings
from orchestrator.errors import ConfigError


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG_PATH", tmp_path / "etc" / "config.yaml")


@pytest.fixture
def config_d(tmp_path: Path) -> Path:
    directory = tmp_path / "config.d"
    directory.mkdir(mode=0o755)
    return directory


def _env(tmp_path: Path, config_d: Path, body: str = "") -> dict[str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(f"config_dropin_dir: {config_d}\n{body}")
    return {"VMREPAIR_CONFIG": str(config)}


def test_deep_merge_merges_mappings_and_replaces_lists_and_scalars() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}
    over = {"a": {"y": [3]}, "b": {"now": "a mapping"}, "c": None}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": [3]}, "b": {"now": "a mapping"}, "c": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}  # inputs untouched


def test_dropins_apply_in_lexical_order_over_the_file(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d, "ssh: {connect_timeout_s: 7}\nrepair: {allowed_roots: [/etc, /opt]}\n")
    (config_d / "20-late.yaml").write_text("ssh: {connect_timeout_s: 9}\n")
    (config_d / "10-early.yaml").write_text("ssh: {connect_timeout_s: 8, command_timeout_s: 60}\n"
                                            "repair: {allowed_roots: [/srv]}\n")
    (config_d / ".10-early.yaml.swp").write_text("not: [yaml")  # editor files are skipped
    (config_d / "notes.txt").write_text("ignored")
    settings = load_settings(env=env)
    assert settings.ssh.connect_timeout_s == 9          # the later drop-in wins
    assert settings.ssh.command_timeout_s == 60         # merged, not replaced, by the later mapping
    assert settings.repair.allowed_roots == ["/srv"]    # lists are replaced whole
    layered = load_config(env)
    assert layered.dropins == (config_d / "10-early.yaml", config_d / "20-late.yaml")
    assert layered.source_of(("ssh", "connect_timeout_s")) == f"drop-in {config_d / '20-late.yaml'}"
    assert layered.source_of(("ssh", "command_timeout_s")) == f"drop-in {config_d / '10-early.yaml'}"
    assert layered.source_of(("config_dropin_dir",)) == f"file {tmp_path / 'config.yaml'}"
    assert layered.source_of(("ssh", "max_output_bytes")) == "default"


def test_invalid_dropin_is_named_with_the_key(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    bad = config_d / "50-bad.yaml"
    bad.write_text("ssh: {connect_timeout_s: -1}\nsssh: {}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert info.value.message == (
        f"{bad}: ssh.connect_timeout_s: Input should be greater than 0\n"
        f"{bad}: sssh: unknown key (not allowed here; check spelling)")
    assert info.value.file == str(bad)


def test_dropin_may_not_move_the_dropin_dir(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    (config_d / "x.yaml").write_text(f"config_dropin_dir: {tmp_path}\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: config_dropin_dir: only .*config\.yaml may set this"):
        load_settings(env=env)


def test_world_writable_dropin_file_or_dir_is_refused(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    dropin = config_d / "10.yaml"
    dropin.write_text("vm: {accel: tcg}\n")
    dropin.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert info.value.message == f"{dropin}: writable by every user; refusing to load configuration from it"
    assert info.value.remedy == f"chmod o-w {dropin}"
    dropin.chmod(0o644)
    config_d.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by every user") as info:
        load_settings(env=env)
    assert info.value.remedy == f"chmod o-w {config_d}"


def test_world_writable_main_file_is_refused(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    Path(env["VMREPAIR_CONFIG"]).chmod(0o646)
    with pytest.raises(ConfigError, match="writable by every user"):
        load_settings(env=env)


def test_symlinked_dropin_is_followed_and_dangling_one_refused(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    shared = tmp_path / "shared.yaml"
    shared.write_text("vm: {accel: tcg}\n")
    (config_d / "10-shared.yaml").symlink_to(shared)
    assert load_settings(env=env).vm.accel == "tcg"
    shared.chmod(0o666)  # the link's target is what is checked
    with pytest.raises(ConfigError, match="writable by every user"):
        load_settings(env=env)
    shared.unlink()
    with pytest.raises(ConfigError, match=r"10-shared\.yaml: file not found"):
        load_settings(env=env)


def test_missing_dropin_dir_means_none_and_a_file_there_is_an_error(tmp_path: Path) -> None:
    assert list_dropins(tmp_path / "absent") == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        list_dropins(tmp_path / "file")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link to nowhere"):
        list_dropins(tmp_path / "link")


def test_dropin_that_is_not_a_mapping_is_named(tmp_path: Path, config_d: Path) -> None:
    env = _env(tmp_path, config_d)
    (config_d / "10.yaml").write_text("[a list]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert info.value.message == f"{config_d / '10.yaml'}: (top level): expected a mapping of keys, got list"
