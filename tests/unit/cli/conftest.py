"""CLI tests run ``main()`` in-process against a temporary state dir and libvirt's test driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_logging import restore_root_logger  # noqa: F401 - registers the autouse fixture


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libvirt_conn: object) -> Path:
    """VMREPAIR_CONFIG -> a config using test:///default; VMREPAIR_STATE_DIR -> tmp. Returns the
    state dir. (``libvirt_conn`` resets the test driver's domains around the test.)"""
    config = tmp_path / "config.yaml"
    # The audit log too stays in tmp: never the real /var/log/vmrepair/audit.jsonl from a unit test.
    # The metrics textfile too: tmp_path/textfile, which a test creates when it wants the file.
    config.write_text("libvirt_uri: test:///default\nvm:\n  accel: tcg\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n"
                      f"metrics: {{textfile_dir: {tmp_path / 'textfile'}}}\n")
    state = tmp_path / "state"
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(state))
    return state
