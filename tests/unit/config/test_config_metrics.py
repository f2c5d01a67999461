"""The `metrics:` section: textfile directory, and a TCP port that is loopback unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.metrics import DEFAULT_TEXTFILE_DIR, MetricsSettings, parse_listen
from orchestrator.config.settings import load_settings
from orchestrator.errors import ConfigError


def _load(tmp_path: Path, text: str) -> MetricsSettings:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    return load_settings(env={"VMREPAIR_CONFIG": str(config)}).metrics


def test_defaults_write_debians_textfile_dir_and_serve_no_port(tmp_path: Path) -> None:
    metrics = _load(tmp_path, "{}\n")
    assert metrics.textfile_dir == DEFAULT_TEXTFILE_DIR == Path("/var/lib/prometheus/node-exporter")
    assert metrics.listen_address is None


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9707", ("127.0.0.1", 9707)),
    ("[::1]:9707", ("::1", 9707)),
    ("127.0.0.53:1", ("127.0.0.53", 1)),
])
def test_loopback_addresses_are_accepted(tmp_path: Path, text: str, expected: tuple[str, int]) -> None:
    metrics = _load(tmp_path, f"metrics: {{listen: '{text}', textfile_dir: /srv/prom}}\n")
    assert metrics.listen_address == expected
    assert metrics.textfile_dir == Path("/srv/prom")


@pytest.mark.parametrize("text", ["0.0.0.0:9707", "192.0.2.10:9707", "[::]:9707"])
def test_a_non_loopback_address_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"metrics: {{listen: '{text}'}}\n")
    assert f"metrics: Value error, listen {text!r} is not a loopback address" in caught.value.message
    assert "set allow_remote: true" in caught.value.message


def test_allow_remote_lets_any_address_through(tmp_path: Path) -> None:
    metrics = _load(tmp_path, "metrics: {listen: '0.0.0.0:9707', allow_remote: true}\n")
    assert metrics.listen_address == ("0.0.0.0", 9707)  # noqa: S104 (the point of the test)


@pytest.mark.parametrize(("text", "message"), [
    ("localhost:9707", "'localhost' is not an IP address (names are not resolved)"),
    ("127.0.0.1", "write it as ADDRESS:PORT"),
    ("127.0.0.1:0", "port 0 is not from 1 to 65535"),
    ("127.0.0.1:99999", "port 99999 is not from 1 to 65535"),
    ("127.0.0.1:\uff19\uff17", "write it as ADDRESS:PORT"),  # fullwidth digits
])
def test_malformed_listen_values_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_listen(text)
    assert message in str(caught.value)


def test_relative_textfile_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "metrics: {textfile_dir: prom}\n")
    assert "metrics.textfile_dir: Value error, not an absolute path: 'prom'" in caught.value.message
