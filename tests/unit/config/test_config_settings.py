"""Resolving Settings from the optional config file and the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.config import settings as settings_module
from orchestrator.config.settings import (
    DEFAULT_PLAYBOOKS_DROPIN_DIR,
    DEFAULT_STATE_DIR,
    ConfigFile,
    load_settings,
)
from orchestrator.errors import ConfigError
from orchestrator.resources import shipped_playbooks_dir, shipped_recipes_dir, shipped_templates_dir


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the machine's /etc/vmrepair/config.yaml."""
    path = tmp_path / "etc" / "config.yaml"
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG_PATH", path)
    return path


def test_defaults_without_any_config_file() -> None:
    settings = load_settings(env={})
    assert settings.config_path is None
    assert settings.state_dir == DEFAULT_STATE_DIR
    assert settings.libvirt_uri == "qemu:///system"
    # The data directories default to the copies shipped inside the package, not the source tree.
    assert settings.templates_dir == shipped_templates_dir()
    assert settings.recipes_dir == shipped_recipes_dir()
    assert settings.playbooks_dir == shipped_playbooks_dir()
    assert settings.playbooks_dropin_dir == DEFAULT_PLAYBOOKS_DROPIN_DIR == Path("/etc/vmrepair/playbooks.d")
    assert (settings.templates_dir / "debian-12.yaml").is_file()
    assert settings.mirror is None
    assert settings.default_template == "debian-12"
    assert settings.ssh == ConfigFile().ssh
    assert settings.vm.accel == "auto"


def test_derived_paths_live_under_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings(env={"VMREPAIR_STATE_DIR": str(tmp_path)})
    assert settings.image_store == tmp_path / "images"
    assert settings.vms_dir == tmp_path / "vms"
    assert settings.keys_dir == tmp_path / "keys"
    assert settings.client_key == tmp_path / "keys" / "id_ed25519"


def test_state_dir_from_environment_overrides_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("state_dir: /srv/from-config\n")
    settings = load_settings(
        env={"VMREPAIR_CONFIG": str(config), "VMREPAIR_STATE_DIR": str(tmp_path / "env")}
    )
    assert settings.state_dir == tmp_path / "env"


def test_explicit_config_file_is_used(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "state_dir: /srv/vmr\nlibvirt_uri: test:///default\ntemplates_dir: /srv/t\n"
        "images_dir: /srv/i\nplaybooks_dir: /srv/p\nplaybooks_dropin_dir: /srv/p.d\n"
        "mirror: http://mirror.example/debian\n"
        "ssh:\n  connect_timeout_s: 2\nvm:\n  accel: tcg\n  boot_timeout_s: 30\n"
    )
    settings = load_settings(env={"VMREPAIR_CONFIG": str(config)})
    assert settings.config_path == config
    assert settings.state_dir == Path("/srv/vmr")
    assert settings.libvirt_uri == "test:///default"
    assert settings.templates_dir == Path("/srv/t")
    assert settings.recipes_dir == Path("/srv/i")
    assert (settings.playbooks_dir, settings.playbooks_dropin_dir) == (Path("/srv/p"), Path("/srv/p.d"))
    assert settings.mirror == "http://mirror.example/debian"
    assert settings.ssh.connect_timeout_s == 2
    assert (settings.vm.accel, settings.vm.boot_timeout_s) == ("tcg", 30)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(env={"VMREPAIR_CONFIG": str(missing)})
    assert info.value.message == f"{missing}: file not found"
    assert info.value.file == str(missing)


def test_default_config_file_is_read_when_present(no_system_config: Path) -> None:
    no_system_config.parent.mkdir()
    no_system_config.write_text("libvirt_uri: test:///default\n")
    settings = load_settings(env={})
    assert settings.config_path == no_system_config
    assert settings.libvirt_uri == "test:///default"


def test_invalid_default_config_file_is_an_error(no_system_config: Path) -> None:
    no_system_config.parent.mkdir()
    no_system_config.write_text("vm:\n  accel: warp\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{no_system_config}: vm.accel: ")):
        load_settings(env={})


def test_empty_environment_values_are_ignored() -> None:
    settings = load_settings(env={"VMREPAIR_CONFIG": "", "VMREPAIR_STATE_DIR": ""})
    assert settings.config_path is None
    assert settings.state_dir == DEFAULT_STATE_DIR


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(env={})
    with pytest.raises(AttributeError):
        settings.state_dir = tmp_path  # type: ignore[misc]


@pytest.mark.parametrize("value", ["state", "./state", "~/state"])
def test_relative_state_dir_from_the_environment_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"VMREPAIR_STATE_DIR": value})
    assert info.value.message == f"VMREPAIR_STATE_DIR={value}: not an absolute path"
    assert info.value.remedy == "set it to an absolute path, e.g. /var/lib/vmrepair"
