"""CLI tests run ``main()`` in-process against a temporary state dir and libvirt's test driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """main() calls logging.basicConfig; keep that from leaking into other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libvirt_conn: object) -> Path:
    """VMREPAIR_CONFIG -> a config using test:///default; VMREPAIR_STATE_DIR -> tmp. Returns the
    state dir. (``libvirt_conn`` resets the test driver's domains around the test.)"""
    config = tmp_path / "config.yaml"
    # The audit log too stays in tmp: never the real /var/log/vmrepair/audit.jsonl from a unit test.
    config.write_text("libvirt_uri: test:///default\nvm:\n  accel: tcg\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    state = tmp_path / "state"
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(state))
    return state
