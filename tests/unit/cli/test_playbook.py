"""`vmrepair playbook list|lint` in-process: the catalog with origins, and one file checked by the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.main import main
from orchestrator.resources import shipped_playbooks_dir

SHIPPED_NAMES = ["disk-full", "fstab", "jsonl-log", "nginx-config", "unit-dropin"]
ROW_KEYS = {"name", "origin", "path", "strategies", "overrides"}


def _flat(text: str) -> str:
    """rich wraps long lines at the console width, inside long paths too: compare without whitespace."""
    return "".join(text.split())


def _has(message: str, output: str) -> bool:
    return _flat(message) in _flat(output)


@pytest.fixture
def dropins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose drop-in directory is tmp (never the machine's /etc); returns that directory.
    The playbook commands touch no VM, so no libvirt either."""
    directory = tmp_path / "playbooks.d"
    directory.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"libvirt_uri: test:///default\nplaybooks_dropin_dir: {directory}\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    monkeypatch.setenv("VMREPAIR_STATE_DIR", str(tmp_path / "state"))
    return directory


def _shipped(name: str) -> dict[str, Any]:
    data = yaml.safe_load((shipped_playbooks_dir() / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _list_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["playbook", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


def test_list_json_shape(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _list_json(capsys)
    assert set(data) == {"playbooks_dir", "dropin_dir", "playbooks"}
    assert (data["playbooks_dir"], data["dropin_dir"]) == (str(shipped_playbooks_dir()), str(dropins))
    rows = data["playbooks"]
    assert [r["name"] for r in rows] == SHIPPED_NAMES
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["origin"] == "shipped" and row["overrides"] is None
        assert row["path"] == str(shipped_playbooks_dir() / f"{row['name']}.yaml")
    assert {r["name"]: r["strategies"] for r in rows}["fstab"] == len(_shipped("fstab")["strategies"])


def test_list_shows_overrides_and_new_dropins(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override = _shipped("fstab")
    del override["strategies"][2]
    override_path = _write(dropins / "my-fstab.yaml", override)
    added = _shipped("disk-full")
    added["name"] = "local-disk"
    for strategy in added["strategies"]:
        strategy["name"] = "local-" + strategy["name"]
    added_path = _write(dropins / "local-disk.yaml", added)
    rows = {r["name"]: r for r in _list_json(capsys)["playbooks"]}
    assert list(rows) == [*SHIPPED_NAMES, "local-disk"]
    assert rows["fstab"] == {"name": "fstab", "origin": "override", "path": str(override_path),
                             "strategies": 2, "overrides": str(shipped_playbooks_dir() / "fstab.yaml")}
    assert rows["local-disk"]["origin"] == "drop-in"
    assert rows["local-disk"]["path"] == str(added_path)


def test_list_for_people(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(dropins / "fstab.yaml", _shipped("fstab"))
    assert main(["playbook", "list"]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[1]: line for line in captured.out.splitlines() if line.startswith("│")}
    assert set(lines) == set(SHIPPED_NAMES)
    assert "override" in lines["fstab"] and "shipped" in lines["disk-full"]
    assert _has(f"drop-in directory: {dropins}", captured.err)


def test_list_fails_on_a_malformed_dropin(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dropins / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["playbook", "list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _has(f"error: {bad}: malformed YAML at line 2, column 1:", captured.err)


def test_lint_valid_file(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shipped_playbooks_dir() / "nginx-config.yaml"
    assert main(["playbook", "lint", str(path)]) == 0
    count = len(_shipped("nginx-config")["strategies"])
    assert _has(f"ok: {count} strategies (nginx-config, {path})", capsys.readouterr().err)


def test_lint_valid_file_json(dropins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shipped_playbooks_dir() / "fstab.yaml"
    assert main(["playbook", "lint", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(path), "ok": True, "name": "fstab",
                                                   "strategies": 3}


def test_lint_invalid_yaml(dropins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: demo\nstrategies: [\n")
    assert main(["playbook", "lint", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _has(f"error: {path}: malformed YAML at line 3, column 1:", captured.err)


def test_lint_unknown_key_names_file_and_key(
    dropins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _shipped("fstab")
    data["strategies"][0]["retries"] = 3
    path = _write(tmp_path / "fstab.yaml", data)
    assert main(["playbook", "lint", str(path)]) == 2
    assert _has(f"error: {path}: strategies[0].retries: unknown key (not allowed here; check spelling)",
                capsys.readouterr().err)


def test_lint_error_text_is_not_read_as_markup(
    dropins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "[/etc/x]" looks like a rich closing tag; printed as markup it would crash the error report.
    path = tmp_path / "odd.yaml"
    path.write_text("name: demo\n'[/etc/x]': 1\n")
    assert main(["playbook", "lint", str(path)]) == 2
    # One line per problem; the other lines (required keys) are the loader's business.
    assert _has(f"{path}: [/etc/x]: unknown key (not allowed here; check spelling)", capsys.readouterr().err)


def test_lint_invalid_file_json(dropins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("- just a list\n")
    assert main(["playbook", "lint", str(path), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data == {"error": "PlaybookError",
                    "message": f"{path}: (top level): expected a mapping of keys, got list"}


def test_lint_missing_file(dropins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "lint", str(tmp_path / "nope.yaml")]) == 2
    assert _has(f"error: {tmp_path / 'nope.yaml'}: file not found", capsys.readouterr().err)
