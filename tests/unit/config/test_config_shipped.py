"""The shipped config.schema.json and config.yaml.example are current, cover every key, and the example
uncommented is a valid config that sets every key to its default."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import settings as settings_module
from orchestrator.config.example import EXAMPLE_FILE, render_example
from orchestrator.config.fielddocs import field_docs
from orchestrator.config.schema_export import REGENERATE, SCHEMA_FILE, export_schema, render_schema
from orchestrator.config.settings import ConfigFile, SshSettings, load_config, load_settings
from orchestrator.resources import shipped_config_dir

SHIPPED = shipped_config_dir()


def test_shipped_schema_is_current() -> None:
    shipped = (SHIPPED / SCHEMA_FILE).read_text()
    assert json.loads(shipped) == export_schema(), f"stale {SCHEMA_FILE}; regenerate with: {REGENERATE}"
    assert shipped == render_schema(), f"regenerate with: {REGENERATE}"


def test_shipped_example_is_current() -> None:
    assert (SHIPPED / EXAMPLE_FILE).read_text() == render_example(), \
        f"stale {EXAMPLE_FILE}; regenerate with: {REGENERATE}"


def _schema_keys(schema: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for obj in [schema, *schema.get("$defs", {}).values()]:
        keys |= set(obj.get("properties", {}))
    return keys


def test_every_schema_key_appears_in_the_example() -> None:
    text = (SHIPPED / EXAMPLE_FILE).read_text()
    keys = _schema_keys(export_schema())
    assert {"state_dir", "config_dropin_dir", "retention", "sessions_days", "connect_timeout_s",
            "expect_status", "url"} <= keys
    missing = sorted(k for k in keys if not re.search(rf"^[#\s-]*{re.escape(k)}:", text, re.MULTILINE))
    assert not missing, f"keys not in {EXAMPLE_FILE}: {missing}"


def test_example_uncommented_loads_as_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.yaml")
    lines = (SHIPPED / EXAMPLE_FILE).read_text().splitlines()
    assert all(line.startswith("#") or not line for line in lines)
    config = tmp_path / "config.yaml"
    # The example's drop-in directory is /etc/vmrepair/config.d: point it at an empty one here.
    config.write_text("\n".join(line[1:] for line in lines).replace(
        '"/etc/vmrepair/config.d"', json.dumps(str(tmp_path / "config.d"))) + "\n")
    env = {"VMREPAIR_CONFIG": str(config)}
    assert load_settings(env=env).config_path == config
    loaded = load_config(env)
    assert loaded.config == ConfigFile(config_dropin_dir=tmp_path / "config.d")
    assert loaded.source_of(("ssh", "connect_timeout_s")) == f"file {config}"  # really set, not defaulted


def test_schema_carries_the_documentation_of_each_key() -> None:
    schema = export_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    retention = schema["$defs"]["RetentionSettings"]["properties"]
    assert retention["sessions_days"]["description"].startswith("sessions (evidence and reports)")
    # From a `#:` comment, not a description=.
    assert schema["$defs"]["RepairSettings"]["properties"]["allowed_roots"]["description"] == (
        "Fix packages may only touch paths under these roots (resolved without following symlinks).")


def test_field_docs_read_comments_and_descriptions() -> None:
    assert "connect_timeout_s" not in field_docs(SshSettings)  # undocumented keys stay so
    assert field_docs(ConfigFile)["mirror"] == ("Debian mirror for image builds; default: the host's "
                                                "apt sources")
