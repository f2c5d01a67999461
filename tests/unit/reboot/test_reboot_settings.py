"""The `reboot:` section refuses bad windows and zones when config.yaml loads, naming key and forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.loading import load_model
from orchestrator.config.reboot import RebootSettings
from orchestrator.config.settings import ConfigFile
from orchestrator.errors import ConfigError


def _load(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_model(path, ConfigFile)


def test_valid_reboot_section(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "reboot:\n  policy: window\n  windows: ['Mon..Fri 02:00 for 45m', 'Sun 03:30 "
                          "for 1h30']\n  timezone: Europe/Berlin\n")
    assert cfg.reboot.windows == ["Mon..Fri 02:00 for 45m", "Sun 03:30 for 1h30"]
    assert cfg.reboot.timezone == "Europe/Berlin"


def test_bad_window_names_file_key_text_and_forms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "reboot:\n  windows: ['Sun 03:30 for 1h30', 'Sunday 3 for ever']\n")
    message = caught.value.message
    assert f"{tmp_path / 'config.yaml'}: reboot.windows: " in message
    assert "invalid maintenance window 'Sunday 3 for ever': start time '3' is not H:MM" in message
    assert "use `[DAYS] HH:MM for DURATION`" in message


def test_unknown_zone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"reboot.timezone: .*unknown time zone 'Mars/Olympus'"):
        _load(tmp_path, "reboot:\n  timezone: Mars/Olympus\n")


def test_window_policy_needs_windows() -> None:
    with pytest.raises(ValueError, match="policy `window` needs at least one entry in `windows`"):
        RebootSettings(policy="window", windows=[])
    assert RebootSettings(policy="prompt", windows=[]).windows == []
