"""The `vmrepair` command in-process: exit codes, JSON on stdout, messages on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli.main import build_parser, main
from orchestrator.imaging.recipe import recipe_hash
from orchestrator.imaging.store import BuiltImage
from orchestrator.imaging.template import load_template
from orchestrator.resources import shipped_recipes_dir, shipped_templates_dir

CHECK_KEYS = {"name", "vital", "ok", "detail", "remedy"}


def _flat(text: str) -> str:
    """rich wraps long lines at the console width; compare messages without the wrapping."""
    return " ".join(text.split())


def _json(out: str) -> dict[str, object]:
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_doctor_json_reports_every_check(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    out = capsys.readouterr().out
    data = _json(out)
    assert set(data) == {"ok", "checks"}
    checks = data["checks"]
    assert isinstance(checks, list)
    assert checks
    for check in checks:
        assert set(check) == CHECK_KEYS
        assert check["remedy"] == ("" if check["ok"] else check["remedy"])
    by_name = {c["name"]: c for c in checks}
    assert by_name["libvirt"]["ok"] is True
    assert "at test:///default" in by_name["libvirt"]["detail"]
    template = by_name["template"]
    assert (template["vital"], template["ok"]) == (True, False)
    assert "'debian-12' is not built" in template["detail"]
    assert "vmrepair image build" in template["remedy"]
    assert data["ok"] is False
    assert code == 1


def test_json_flag_before_the_command(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "doctor"]) == 1
    assert set(_json(capsys.readouterr().out)) == {"ok", "checks"}


def test_doctor_for_people(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 1
    out = _flat(capsys.readouterr().out)
    assert "not ready: a vital check failed" in out
    assert "remedy: run `vmrepair image build` (or `make setup`)" in out


def test_invalid_vm_name_exits_2_and_names_the_rule(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vm", "up", "Bad_Name"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "error: invalid VM name 'Bad_Name': use 1-40 lowercase letters, digits and '-', "
        "starting with a letter or digit"
    ) in _flat(captured.err)


def test_errors_as_json(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "destroy", "ghost", "--json"]) == 4
    data = _json(capsys.readouterr().out)
    assert data == {"error": "VmNotFoundError", "message": "no VM named 'ghost'"}


def test_image_not_built_error_prints_the_remedy(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vm", "up", "web1"]) == 3
    err = _flat(capsys.readouterr().err)
    assert "error: template 'debian-12' is not built" in err
    assert "remedy: run `vmrepair image build debian-12` (or `make setup`)" in err


def test_image_list_json_for_an_empty_state_dir(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "list", "--json"]) == 0
    images = _json(capsys.readouterr().out)["images"]
    assert isinstance(images, list)
    by_name = {row["template"]: row for row in images}
    assert by_name["debian-12"]["status"] == "not built"
    assert by_name["debian-12"]["built_at"] is None
    assert by_name["debian-12"]["size_bytes"] == 0


@pytest.mark.parametrize(("is_current", "status"), [(True, "current"), (False, "outdated")])
def test_image_list_compares_the_recipe_hash(
    cli_env: Path, capsys: pytest.CaptureFixture[str],
    make_built_image: Callable[..., BuiltImage], is_current: bool, status: str,
) -> None:
    template = load_template(shipped_templates_dir(), "debian-12")
    wanted = recipe_hash(shipped_recipes_dir(), template) if is_current else "f" * 64
    built = make_built_image(cli_env / "images", recipe_hash=wanted)
    assert main(["image", "list", "--json"]) == 0
    rows = {r["template"]: r for r in _json(capsys.readouterr().out)["images"]}  # type: ignore[union-attr]
    row = rows["debian-12"]
    assert row["status"] == status
    assert row["kernel"] == "6.1.0-test"
    assert row["directory"] == str(built.directory)
    assert row["size_bytes"] == sum(a.size for a in built.manifest.artifacts.values())


def test_vm_list_json_after_the_subcommand(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vm", "list", "--json"]) == 0
    assert _json(capsys.readouterr().out) == {"vms": []}
    assert main(["--json", "vm", "list"]) == 0
    assert _json(capsys.readouterr().out) == {"vms": []}


def test_vm_list_shows_leftovers(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cli_env / "vms" / "old").mkdir(parents=True)
    assert main(["vm", "list", "--json"]) == 0
    (vm,) = _json(capsys.readouterr().out)["vms"]  # type: ignore[misc]
    assert (vm["name"], vm["state"], vm["stale"]) == ("old", "no domain", True)
    assert main(["vm", "reap", "--json"]) == 0
    assert _json(capsys.readouterr().out) == {"removed": ["old"], "unreachable": {}}
    assert not (cli_env / "vms" / "old").exists()


def test_vm_exec_without_a_command(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "exec", "web1", "--"]) == 2
    assert "vm exec needs a command" in _flat(capsys.readouterr().err)


def test_invalid_config_exits_2_naming_file_and_key(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("ssh:\n  bogus: 1\n")
    monkeypatch.setenv("VMREPAIR_CONFIG", str(config))
    assert main(["vm", "list"]) == 2
    assert f"error: {config}: ssh.bogus: unknown key" in _flat(capsys.readouterr().err)


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["doctor"], ["image", "list"], ["image", "build"], ["vm", "list"], ["vm", "reap"],
    ["vm", "up", "x"], ["vm", "destroy", "x"], ["vm", "snapshot", "x", "s"],
    ["vm", "revert", "x", "s"], ["vm", "snapshots", "x"], ["vm", "exec", "x"],
])
def test_json_and_debug_work_before_and_after_every_command(argv: list[str]) -> None:
    parser = build_parser()
    plain = parser.parse_args(argv)
    assert (plain.json, plain.debug) == (False, False)
    assert parser.parse_args(["--json", "--debug", *argv]).json is True
    after = parser.parse_args([*argv[:2], "--json", "--debug", *argv[2:]])
    assert (after.json, after.debug) == (True, True)
