"""watch.ignore_paths: which paths an entry covers, what it strips, and what the config refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.components.config import WatchFile, build_watch_config
from orchestrator.components.ignore import covering, strip_paths
from orchestrator.config.settings import load_settings
from orchestrator.errors import ConfigError
from orchestrator.model import Component

APP = Component("app", units=("app.service",), config_paths=("/etc/app", "/etc/default/app"),
                unit_paths=("/etc/systemd/system/app.service.d",), data_paths=("/var/lib/app",),
                log_paths=("/var/log/app",), writable_paths=("/var/lib/app", "/var/cache/app"),
                jsonl_logs=("/var/lib/app/events.jsonl",), fstab=("/etc/fstab",))


@pytest.mark.parametrize(("path", "entry"), [
    ("/var/lib/app", "/var/lib/app"), ("/var/lib/app/events.jsonl", "/var/lib/app"),
    ("/var/lib/apple", None), ("/var/lib", None), ("/etc/x", None),
])
def test_an_entry_covers_itself_and_what_is_below_it(path: str, entry: str | None) -> None:
    assert covering(path, ["/srv", "/var/lib/app"]) == entry


def test_strip_drops_covered_paths_from_every_list() -> None:
    stripped = strip_paths(APP, ["/var/lib/app", "/etc/default/app"])
    assert stripped.config_paths == ("/etc/app",)
    assert (stripped.data_paths, stripped.jsonl_logs) == ((), ())
    assert stripped.writable_paths == ("/var/cache/app",)
    assert (stripped.unit_paths, stripped.log_paths, stripped.fstab) == (APP.unit_paths, APP.log_paths,
                                                                          APP.fstab)
    assert strip_paths(APP, []) is APP


def test_configured_and_default_components_are_stripped() -> None:
    watch = build_watch_config(WatchFile(ignore_paths=["/var/lib/sampleapp"]))
    assert watch.ignore_paths == ("/var/lib/sampleapp",)
    sampleapp = watch.component("sampleapp")
    assert not any(p.startswith("/var/lib/sampleapp") for p in (*sampleapp.data_paths, *sampleapp.jsonl_logs,
                                                                *sampleapp.writable_paths))


def error(tmp_path: Path, text: str) -> str:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={"VMREPAIR_CONFIG": str(tmp_path / "config.yaml")})
    return info.value.message


@pytest.mark.parametrize(("entry", "problem"), [
    ("var/lib/app", "not an absolute path"),
    ("/", "ignoring the whole file system"),
    ("/var/lib/../../etc", "'..' is not allowed"),
    ("/var/lib/app/", "not a normalized path (write it as '/var/lib/app')"),
    ("/var//lib", "not a normalized path (write it as '/var/lib')"),
    ("/var/./lib", "not a normalized path"),
    ("/" + "a" * 5000, "not an absolute path (at most 4096 characters)"),
])
def test_bad_entries_name_their_path(tmp_path: Path, entry: str, problem: str) -> None:
    message = error(tmp_path, f"watch:\n  ignore_paths: ['{entry}']\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: watch.ignore_paths[0]: Value error, ")
    assert problem in message


def test_the_list_is_capped(tmp_path: Path) -> None:
    entries = ", ".join(f"/srv/x{i}" for i in range(257))
    message = error(tmp_path, f"watch:\n  ignore_paths: [{entries}]\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: watch.ignore_paths: List should have at most 256")
