"""Values that parse but make no sense are refused when the config loads, naming the key (issue 13,
item 9): unit names that would read as options, "/" or relative allowed roots, relative paths,
negative uids, NaN and infinity."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.loading import load_model
from orchestrator.config.settings import ConfigFile
from orchestrator.errors import ConfigError


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_model(path, ConfigFile)
    return info.value.message.removeprefix(f"{path}: ")


def _loads(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_model(path, ConfigFile)


COMPONENT = "watch:\n  components:\n    - name: web\n      units: [{unit}]\n"


@pytest.mark.parametrize("unit", ["'-x'", "'--help'", "'-H.service'", "''", "'a b.service'", "'a/b.service'",
                                  '"x\\0.service"', '"web.service\\n"', "x" * 300 + ".service"])
def test_a_unit_name_that_is_not_one_is_refused(tmp_path: Path, unit: str) -> None:
    message = _refused(tmp_path, COMPONENT.format(unit=unit))
    assert message.startswith("watch.components[0].units[0]: Value error, not a systemd unit name")


@pytest.mark.parametrize("unit", ["web.service", "web", "getty@tty1.service", "-.mount",
                                  "dev-disk-by\\x2duuid.swap", "sys-kernel-debug.mount"])
def test_real_unit_names_are_accepted(tmp_path: Path, unit: str) -> None:
    cfg = _loads(tmp_path, COMPONENT.format(unit=f"'{unit}'"))
    assert cfg.watch is not None and cfg.watch.components[0].units == [unit.replace("\\\\", "\\")]


@pytest.mark.parametrize(("root", "why"), [("/", "the whole file system"), ("etc", "not an absolute path"),
                                           ("./etc", "not an absolute path"), ("", "not an absolute path"),
                                           ("/etc/../root", "not a normalized path"),
                                           ("/etc/", "not a normalized path"),
                                           ("//etc", "not a normalized path")])
def test_allowed_roots_must_be_absolute_normal_and_not_the_root(tmp_path: Path, root: str, why: str) -> None:
    message = _refused(tmp_path, f"repair:\n  allowed_roots: ['/opt', '{root}']\n")
    assert message.startswith(f"repair.allowed_roots[1]: Value error, {root!r}: {why}")


@pytest.mark.parametrize(("text", "key"), [
    ("audit: {path: audit.jsonl}", "audit.path"),
    ("audit: {path: ''}", "audit.path"),
    ("state_dir: var/lib/vmrepair", "state_dir"),
    ("daemon: {socket: api.sock}", "daemon.socket"),
    ("playbooks_dropin_dir: playbooks.d", "playbooks_dropin_dir"),
    ("playbooks_dir: ./playbooks", "playbooks_dir"),
    ("targets: {known_hosts: known_hosts}", "targets.known_hosts"),
])
def test_paths_must_be_absolute(tmp_path: Path, text: str, key: str) -> None:
    assert _refused(tmp_path, text + "\n").startswith(f"{key}: Value error, not an absolute path")


@pytest.mark.parametrize("uid", ["-1", "-0.5", "4294967295", "99999999999", "true", "'0'"])
def test_allowed_uids_must_be_real_uids(tmp_path: Path, uid: str) -> None:
    message = _refused(tmp_path, f"daemon: {{allowed_uids: [1000, {uid}]}}\n")
    assert message.startswith("daemon.allowed_uids[1]: ")


@pytest.mark.parametrize(("key", "section"), [("stable_period_s", "repair"), ("step_timeout_s", "repair"),
                                              ("notice_s", "reboot"), ("detect_interval_s", "daemon"),
                                              ("interval_s", "health"), ("connect_timeout_s", "ssh"),
                                              ("boot_timeout_s", "vm")])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_infinity_are_refused_naming_the_key(tmp_path: Path, key: str, section: str,
                                                    value: str) -> None:
    message = _refused(tmp_path, f"{section}: {{{key}: {value}}}\n")
    assert message == f"{section}.{key}: Input should be a finite number"
