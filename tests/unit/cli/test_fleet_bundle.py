"""`vmrepair fleet key|export|import` end to end between two hosts' state dirs, in-process.

`vmrepair fleet` itself is registered by cli/fleet.py (another change): the test builds a `fleet`
group of its own, the way that module calls :func:`register_bundle_commands`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.app import App
from orchestrator.cli import helptext
from orchestrator.cli.fleet_bundle import local_os_release, register_bundle_commands
from orchestrator.cli.main import _CommandParser, _report_error
from orchestrator.config.settings import Settings
from orchestrator.errors import FleetError, VmRepairError
from tests.unit.fleet.conftest import add_outcome, with_signature_columns

Run = Callable[[App, list[str]], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmrepair")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    fleet = sub.add_parser("fleet", help="share strategy outcomes between hosts")
    register_bundle_commands(fleet.add_subparsers(dest="fleet_cmd", required=True))
    return parser


@pytest.fixture
def run() -> Run:
    """``main()``'s handling of one command: its handler's code, or the error's exit code."""
    parser = _parser()

    def invoke(app: App, argv: list[str]) -> int:
        args = parser.parse_args(argv)
        try:
            return int(args.handler(app, args))
        except VmRepairError as exc:
            _report_error(exc, as_json=getattr(args, "json", False))
            return exc.exit_code

    return invoke


@pytest.fixture
def hosts(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[App, App]]:
    exporter = App(make_settings(state_dir=tmp_path / "a"))
    with_signature_columns(exporter.state)
    importer = App(make_settings(state_dir=tmp_path / "b"))
    yield exporter, importer
    exporter.close()
    importer.close()


def test_export_then_import_between_two_hosts(hosts: tuple[App, App], run: Run, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    exporter, importer = hosts
    assert run(exporter, ["fleet", "key", "create"]) == 0
    public_line = capsys.readouterr().out
    assert public_line.startswith("vmrepair-fleet-ed25519 ")
    assert run(exporter, ["fleet", "key", "show"]) == 0
    assert capsys.readouterr().out == public_line
    (tmp_path / "a.pub").write_text(public_line)
    assert run(importer, ["fleet", "key", "trust", str(tmp_path / "a.pub"), "--name", "a-fleet"]) == 0

    add_outcome(exporter.state, "fstab-restore-baseline", succeeded=True, target="ssh://root@web1")
    add_outcome(exporter.state, "gen-unknown-here", succeeded=True)
    bundle = tmp_path / "a.bundle"
    assert run(exporter, ["fleet", "export", "--out", str(bundle), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    # A generated strategy travels by name: the importing host derives it from its own evidence.
    assert exported["strategies"] == 2
    assert exported["left_out"] == []
    assert b"web1" not in bundle.read_bytes()

    assert run(importer, ["fleet", "import", str(bundle), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["key_name"], imported["version"]) == ("a-fleet", exported["version"])
    assert imported["os_release"] == local_os_release()

    assert run(importer, ["fleet", "import", str(bundle)]) == FleetError.exit_code
    assert "is not newer than version" in capsys.readouterr().err

    assert run(importer, ["fleet", "key", "show", "--trusted", "--json"]) == 0
    [trusted] = json.loads(capsys.readouterr().out)["trusted"]
    assert run(importer, ["fleet", "key", "revoke", trusted["key_id"]]) == 0
    assert run(exporter, ["fleet", "export", "--out", str(bundle)]) == 0
    assert run(importer, ["fleet", "import", str(bundle)]) == FleetError.exit_code
    assert "was revoked" in capsys.readouterr().err


def test_import_of_an_unknown_key_exits_with_the_reason(hosts: tuple[App, App], run: Run, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    exporter, importer = hosts
    assert run(exporter, ["fleet", "key", "create"]) == 0
    bundle = tmp_path / "a.bundle"
    assert run(exporter, ["fleet", "export", "--out", str(bundle)]) == 0
    capsys.readouterr()
    assert run(importer, ["fleet", "import", str(bundle)]) == 17
    err = capsys.readouterr().err
    assert "bundle refused: unknown key" in err
    assert "vmrepair fleet key trust" in err  # the remedy


def test_trust_by_pubkey_and_its_mistakes(hosts: tuple[App, App], run: Run,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    exporter, importer = hosts
    assert run(exporter, ["fleet", "key", "create", "--json"]) == 0
    public = json.loads(capsys.readouterr().out)["public"].split()[1]
    assert run(importer, ["fleet", "key", "trust"]) == 17
    assert "give either a public key FILE or --pubkey" in capsys.readouterr().err
    assert run(importer, ["fleet", "key", "trust", "--pubkey", public]) == 17
    assert "the key has no name" in capsys.readouterr().err
    assert run(importer, ["fleet", "key", "trust", "--pubkey", "AAAA", "--name", "x"]) == 17
    assert "base64 of 32 bytes" in capsys.readouterr().err
    assert run(importer, ["fleet", "key", "trust", "--pubkey", public, "--name", "b-fleet"]) == 0
    assert "trusted fleet key" in capsys.readouterr().err
    assert run(importer, ["fleet", "key", "show", "--trusted"]) == 0
    assert "b-fleet" in capsys.readouterr().out


def test_missing_key_and_missing_file_say_so(hosts: tuple[App, App], run: Run, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    exporter, importer = hosts
    assert run(exporter, ["fleet", "export", "--out", str(tmp_path / "x")]) == 17
    assert "no fleet signing key" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert run(importer, ["fleet", "import", str(tmp_path / "missing")]) == 17
    assert "cannot read bundle" in capsys.readouterr().err
    assert run(exporter, ["fleet", "key", "create"]) == 0
    assert run(exporter, ["fleet", "key", "create"]) == 17
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--since", "0"], ["--since", "nan"], ["--expires-days", "-1"],
                                  ["--expires-days", "99999"]])
def test_bad_numbers_are_refused_when_parsed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["fleet", "export", "--out", "/tmp/b", *argv])
    assert exc.value.code == 2
    assert "is not a number of days" in capsys.readouterr().err


def test_every_bundle_command_has_help() -> None:
    parser = _parser()
    leaves = {path for path, child, _ in helptext.command_parsers(parser) if helptext.is_leaf(child)}
    assert leaves == set(helptext.FLEET_BUNDLE_HELP)
    for path, entry in helptext.FLEET_BUNDLE_HELP.items():
        assert any(example.startswith(f"vmrepair {path}") for example in entry.examples), path
