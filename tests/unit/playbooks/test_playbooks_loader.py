"""Invalid playbooks are refused with messages that name the file and the key path; the catalog adds
the drop-ins to the shipped playbooks, by name."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config.settings import Settings
from orchestrator.errors import ConfigError, PlaybookError
from orchestrator.model import IssueKind
from orchestrator.playbooks.catalog import Origin, catalog_entries, load_catalog
from orchestrator.playbooks.loader import MAX_PLAYBOOK_BYTES, load_playbook, load_playbooks
from orchestrator.resources import shipped_playbooks_dir
from orchestrator.steps.kinds.fstab_entry import FstabEntryStep
from orchestrator.steps.kinds.quarantine import QuarantineStep
from orchestrator.steps.kinds.restore_baseline import RestoreBaselineStep
from orchestrator.steps.kinds.unit import UnitStep

VALID = """\
name: demo
description: a demo playbook
applies_to:
  components: [nginx]
  kinds: [config_invalid]
diagnostics:
  - name: test
    run: [nginx, -t]
rules:
  - when: {diagnostic: test, matches: 'in (/etc/nginx/\\S+):\\d+'}
    cause: broken
    confidence: 0.9
    extract: {offender: 'in (/etc/nginx/[^\\s:]+):\\d+'}
strategies:
  - name: demo-fix
    description: fix it
    for_causes: [broken]
    effectiveness: 0.8
    steps:
      - quarantine: {path: '{offender}', within: [/etc/nginx/sites-enabled]}
      - unit: {name: '{unit}', action: restart}
"""


def _write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = _write(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert info.value.file == str(path)
    return path, info.value.message


def test_valid_playbook_converts_to_plain_objects(tmp_path: Path) -> None:
    playbook = load_playbook(_write(tmp_path, VALID))
    assert playbook.name == "demo"
    assert playbook.applies_to("nginx", IssueKind.CONFIG_INVALID)
    assert not playbook.applies_to("sampleapp", IssueKind.CONFIG_INVALID)
    assert not playbook.applies_to("nginx", IssueKind.DISK_FULL)
    rule = playbook.rules[0]
    assert rule.matches is not None and rule.matches.search("x in /etc/nginx/a:3")
    assert [name for name, _ in rule.extract] == ["offender"]
    strategy = playbook.strategies[0]
    assert strategy.playbook == "demo"
    assert isinstance(strategy.steps[0], QuarantineStep)
    assert strategy.steps[0].quarantine_dir == "/var/lib/vmrepair/quarantine"
    assert isinstance(strategy.steps[1], UnitStep) and strategy.steps[1].action == "restart"


def test_playbook_error_is_a_config_error() -> None:
    assert issubclass(PlaybookError, ConfigError)


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("action: restart}", "action: restart, when: now}"))
    assert message == (f"{path}: strategies[0].steps[1].unit.when: unknown key (not allowed here; check "
                       "spelling)")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID + "author: me\n")
    assert message == f"{path}: author: unknown key (not allowed here; check spelling)"


def test_bad_regex_names_the_rule(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("matches: 'in (/etc", "matches: 'in ((/etc"))
    assert message.startswith(f"{path}: rules[0].when.matches: Value error, invalid regular expression: ")


def test_overlong_regex_is_refused(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("matches: 'in (", "matches: '" + "a" * 600 + "in ("))
    assert message.startswith(f"{path}: rules[0].when.matches: String should have at most 512 characters")


def test_extract_needs_exactly_one_group(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("extract: {offender: 'in (/etc/nginx/[^\\s:]+):\\d+'}",
                                                   "extract: {offender: 'in /etc'}"))
    assert message == (f"{path}: rules[0]: Value error, extract.offender: the regex must have exactly one "
                       "capturing group")


def test_unknown_step_kind(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("- unit: {name: '{unit}', action: restart}",
                                                   "- restart: {name: '{unit}'}"))
    assert message.startswith(f"{path}: strategies[0].steps[1]: Value error, unknown step kind 'restart'; "
                              "kinds: run, unit, restore_baseline")


def test_step_with_two_kinds(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("- unit: {name: '{unit}', action: restart}",
                                                   "- {unit: {action: daemon-reload}, run: {argv: [x]}}"))
    assert message.startswith(f"{path}: strategies[0].steps[1]: Value error, a step has exactly one key, "
                              "its kind (found: unit, run)")


def test_bad_enum_values(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("kinds: [config_invalid]", "kinds: [config_broken]")
                           .replace("action: restart}", "action: bounce}"))
    lines = message.splitlines()
    assert lines[0].startswith(f"{path}: applies_to.kinds[0]: Input should be 'unit_failed', ")
    assert lines[1].startswith(f"{path}: strategies[0].steps[1].unit.action: Input should be 'start', ")


def test_out_of_range_numbers(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("confidence: 0.9", "confidence: 1.5"))
    assert message == f"{path}: rules[0].confidence: Input should be less than or equal to 1"


def test_daemon_reload_takes_no_name(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("action: restart}", "action: daemon-reload}"))
    assert message == f"{path}: strategies[0].steps[1].unit: Value error, daemon-reload takes no name"


def test_quarantine_dir_must_stay_under_vmrepair(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("within: [/etc/nginx/sites-enabled]}",
                                                   "quarantine_dir: /tmp/q}"))
    assert message == (f"{path}: strategies[0].steps[0].quarantine: Value error, quarantine_dir must be "
                       "/var/lib/vmrepair/quarantine or below it")


def test_relative_paths_are_refused(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("path: '{offender}'", "path: etc/nginx/x"))
    assert message == (f"{path}: strategies[0].steps[0].quarantine.path: Value error, must be an absolute "
                       "path or start with a {placeholder}")


def test_restore_paths_take_a_keyword_or_paths(tmp_path: Path) -> None:
    text = VALID.replace("- quarantine: {path: '{offender}', within: [/etc/nginx/sites-enabled]}",
                         "- restore_baseline: {paths: component_units, quarantine_added: unit_paths}")
    step = load_playbook(_write(tmp_path, text)).strategies[0].steps[0]
    assert isinstance(step, RestoreBaselineStep)
    assert (step.scopes, step.paths, step.quarantine_added) == (("component_units",), (), ("unit_paths",))
    path, message = _error(tmp_path, text.replace("paths: component_units", "paths: componnet"))
    assert message.startswith(f"{path}: strategies[0].steps[0].restore_baseline.paths[0]: Value error, must "
                              "be an absolute path or start with a {placeholder} (or one of: component, ")


def test_rule_must_name_a_declared_diagnostic(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("diagnostic: test,", "diagnostic: tset,"))
    assert message == f"{path}: rules[0].when.diagnostic: unknown diagnostic 'tset' (declared: test)"


def test_strategy_cause_must_come_from_a_rule(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("for_causes: [broken]", "for_causes: [borken]"))
    assert message == (f"{path}: strategies[0].for_causes[0]: no rule of this playbook yields cause 'borken' "
                       "(rules yield: broken)")


def test_wildcard_must_stand_alone(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("for_causes: [broken]", "for_causes: [broken, '*']"))
    assert message == f"{path}: strategies[0]: Value error, for_causes: \"*\" must be the only entry"


def test_unknown_placeholder_in_a_step(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("path: '{offender}'", "path: '{ofender}'"))
    assert message == (f"{path}: strategies[0].steps[0].quarantine.path: unknown placeholder {{ofender}} "
                       "(known: component, offender, subject, unit)")


def test_diagnostics_may_only_use_builtins(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace("run: [nginx, -t]", "run: [cat, '{offender}']"))
    assert message == (f"{path}: diagnostics[0].run[1]: unknown placeholder {{offender}} "
                       "(diagnostics may use component, subject, unit)")


def test_duplicate_diagnostic_and_strategy_names(tmp_path: Path) -> None:
    text = VALID.replace("    run: [nginx, -t]\n", "    run: [nginx, -t]\n  - name: test\n    run: [x]\n")
    path, message = _error(tmp_path, text)
    assert message == f"{path}: diagnostics[1].name: duplicate diagnostic 'test'"


def test_malformed_yaml_and_size_cap(tmp_path: Path) -> None:
    path, message = _error(tmp_path, "name: [unclosed\n")
    assert message.startswith(f"{path}: malformed YAML at line ")
    path, message = _error(tmp_path, "description: " + "x" * MAX_PLAYBOOK_BYTES + "\n")
    assert message == f"{path}: file is larger than {MAX_PLAYBOOK_BYTES} bytes"


def test_duplicate_playbook_names_across_files_name_both(tmp_path: Path) -> None:
    first = _write(tmp_path, VALID, "a.yaml")
    second = _write(tmp_path, VALID.replace("name: demo-fix", "name: other-fix"), "b.yaml")
    with pytest.raises(PlaybookError) as info:
        load_playbooks(tmp_path)
    assert info.value.message == f"{second}: name: playbook 'demo' is already defined in {first}"


def test_duplicate_strategy_names_across_files_name_both(tmp_path: Path) -> None:
    first = _write(tmp_path, VALID, "a.yaml")
    second = _write(tmp_path, VALID.replace("name: demo\n", "name: demo2\n"), "b.yaml")
    with pytest.raises(PlaybookError) as info:
        load_playbooks(tmp_path)
    assert info.value.message == (f"{second}: strategies[0].name: strategy 'demo-fix' is already defined "
                                  f"in {first}")


def test_playbooks_load_in_file_name_order(tmp_path: Path) -> None:
    _write(tmp_path, VALID.replace("name: demo\n", "name: zeta\n").replace("demo-fix", "z-fix"), "b.yaml")
    _write(tmp_path, VALID.replace("name: demo\n", "name: alpha\n"), "a.yaml")
    (tmp_path / "notes.txt").write_text("not a playbook")
    assert [p.name for p in load_playbooks(tmp_path)] == ["alpha", "zeta"]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="playbook directory not found"):
        load_playbooks(tmp_path / "nope")


FSTAB_STEP = "- quarantine: {path: '{offender}', within: [/etc/nginx/sites-enabled]}"


def test_fstab_entry_converts_and_defaults_to_the_issue_subject(tmp_path: Path) -> None:
    text = VALID.replace(FSTAB_STEP, "- fstab_entry: {action: comment}")
    step = load_playbook(_write(tmp_path, text)).strategies[0].steps[0]
    assert isinstance(step, FstabEntryStep)
    assert (step.action, step.path.raw, step.kind) == ("comment", "{subject}", "fstab_entry")
    text = VALID.replace(FSTAB_STEP, "- fstab_entry: {action: nofail, path: /etc/fstab}")
    step = load_playbook(_write(tmp_path, text)).strategies[0].steps[0]
    assert isinstance(step, FstabEntryStep)
    assert (step.action, step.path.raw) == ("nofail", "/etc/fstab")


def test_fstab_entry_refuses_an_unknown_action(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace(FSTAB_STEP, "- fstab_entry: {action: delete}"))
    assert message == (f"{path}: strategies[0].steps[0].fstab_entry.action: Input should be 'nofail' or "
                       "'comment'")


def test_fstab_entry_needs_an_action(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace(FSTAB_STEP, "- fstab_entry: {path: /etc/fstab}"))
    assert message == f"{path}: strategies[0].steps[0].fstab_entry.action: Field required"


def test_fstab_entry_path_must_be_absolute_or_a_placeholder(tmp_path: Path) -> None:
    path, message = _error(tmp_path, VALID.replace(FSTAB_STEP,
                                                   "- fstab_entry: {action: nofail, path: etc/fstab}"))
    assert message == (f"{path}: strategies[0].steps[0].fstab_entry.path: Value error, must be an absolute "
                       "path or start with a {placeholder}")
    path, message = _error(tmp_path, VALID.replace(FSTAB_STEP,
                                                   "- fstab_entry: {action: nofail, path: '{fstab}'}"))
    assert message == (f"{path}: strategies[0].steps[0].fstab_entry.path: unknown placeholder {{fstab}} "
                       "(known: component, offender, subject, unit)")


# -- the catalog: shipped playbooks + drop-ins that add or override by name ----------------------
# Drop-ins are derived from a shipped file, so these tests follow the step schema wherever it goes.

SHIPPED_NAMES = ["disk-full", "fstab", "jsonl-log", "nginx-config", "unit-dropin"]


@pytest.fixture
def catalog_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    dropins = tmp_path / "playbooks.d"
    dropins.mkdir()
    return make_settings(playbooks_dropin_dir=dropins)


def _shipped_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((shipped_playbooks_dir() / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _dropin(settings: Settings, data: dict[str, Any], file: str) -> Path:
    path = settings.playbooks_dropin_dir / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _renamed(name: str, new_name: str) -> dict[str, Any]:
    """A shipped playbook under a new name, with new strategy names (they must stay unique)."""
    data = _shipped_yaml(name)
    data["name"] = new_name
    for strategy in data["strategies"]:
        strategy["name"] = f"{new_name}-{strategy['name']}"
    return data


def _catalog_error(settings: Settings) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        catalog_entries(settings)
    return info.value


def test_catalog_without_dropins_is_the_shipped_playbooks(catalog_settings: Settings) -> None:
    entries = catalog_entries(catalog_settings)
    assert [e.name for e in entries] == SHIPPED_NAMES
    assert {e.origin for e in entries} == {Origin.SHIPPED}
    assert all(e.path.parent == shipped_playbooks_dir() and e.overrides is None for e in entries)
    assert [p.name for p in load_catalog(catalog_settings)] == SHIPPED_NAMES


def test_missing_dropin_directory_means_no_dropins(make_settings: Callable[..., Settings],
                                                   tmp_path: Path) -> None:
    settings = make_settings(playbooks_dropin_dir=tmp_path / "absent")
    assert [p.name for p in load_catalog(settings)] == SHIPPED_NAMES


def test_dropin_overrides_a_shipped_playbook_by_name_in_place(catalog_settings: Settings) -> None:
    data = _shipped_yaml("fstab")
    data["description"] = "the local variant"
    # The file name does not matter, the playbook's name does; the shipped strategy names may stay.
    path = _dropin(catalog_settings, data, "zz-local-fstab.yaml")
    entries = catalog_entries(catalog_settings)
    assert [e.name for e in entries] == SHIPPED_NAMES
    fstab = entries[SHIPPED_NAMES.index("fstab")]
    assert (fstab.origin, fstab.path) == (Origin.OVERRIDE, path)
    assert fstab.overrides == shipped_playbooks_dir() / "fstab.yaml"
    assert fstab.playbook.description == "the local variant"
    assert fstab.playbook.source == str(path)


def test_dropin_with_a_new_name_is_added_after_the_shipped_ones(catalog_settings: Settings) -> None:
    path = _dropin(catalog_settings, _renamed("disk-full", "local-disk"), "00-local-disk.yaml")
    entries = catalog_entries(catalog_settings)
    assert [e.name for e in entries] == [*SHIPPED_NAMES, "local-disk"]
    assert (entries[-1].origin, entries[-1].path, entries[-1].overrides) == (Origin.DROPIN, path, None)


def test_only_yaml_files_are_dropins(catalog_settings: Settings) -> None:
    _dropin(catalog_settings, _renamed("disk-full", "local-disk"), "local-disk.yml")
    (catalog_settings.playbooks_dropin_dir / "README").write_text("not a playbook\n")
    assert [p.name for p in load_catalog(catalog_settings)] == SHIPPED_NAMES


def test_malformed_dropin_fails_the_catalog_naming_the_file(catalog_settings: Settings) -> None:
    path = catalog_settings.playbooks_dropin_dir / "broken.yaml"
    path.write_text("name: broken\nstrategies: [\n")
    error = _catalog_error(catalog_settings)
    assert error.file == str(path)
    assert error.message.startswith(f"{path}: malformed YAML at line 3, column 1: ")


def test_dropin_with_an_unknown_key_names_file_and_key(catalog_settings: Settings) -> None:
    data = _shipped_yaml("fstab")
    data["strategies"][1]["retries"] = 3
    path = _dropin(catalog_settings, data, "fstab.yaml")
    error = _catalog_error(catalog_settings)
    assert error.file == str(path)
    assert error.message == f"{path}: strategies[1].retries: unknown key (not allowed here; check spelling)"


def test_new_dropin_may_not_reuse_a_shipped_strategy_name(catalog_settings: Settings) -> None:
    data = _renamed("disk-full", "local-disk")
    data["strategies"][1]["name"] = "fstab-add-nofail"
    path = _dropin(catalog_settings, data, "local-disk.yaml")
    error = _catalog_error(catalog_settings)
    assert error.file == str(path)
    assert error.message == (f"{path}: strategies[1].name: strategy 'fstab-add-nofail' is already defined "
                             f"in {shipped_playbooks_dir() / 'fstab.yaml'}")


def test_two_dropins_may_not_define_one_playbook(catalog_settings: Settings) -> None:
    _dropin(catalog_settings, _shipped_yaml("fstab"), "a.yaml")
    second = _dropin(catalog_settings, _shipped_yaml("fstab"), "b.yaml")
    error = _catalog_error(catalog_settings)
    assert error.file == str(second)
    assert error.message.startswith(f"{second}: name: playbook 'fstab' is already defined in ")


def test_world_writable_dropins_are_refused(catalog_settings: Settings) -> None:
    path = _dropin(catalog_settings, _shipped_yaml("fstab"), "fstab.yaml")
    path.chmod(0o666)
    error = _catalog_error(catalog_settings)
    assert error.message == f"{path}: writable by every user; refusing to load playbooks from it"
    assert error.remedy == f"chmod o-w {path}"


def test_dropin_path_that_is_a_file_is_an_error(make_settings: Callable[..., Settings],
                                                tmp_path: Path) -> None:
    not_a_dir = tmp_path / "playbooks.d"
    not_a_dir.write_text("")
    error = _catalog_error(make_settings(playbooks_dropin_dir=not_a_dir))
    assert error.message == f"{not_a_dir}: playbook drop-in directory is not a directory"


def test_configured_playbooks_dir_replaces_the_shipped_one(catalog_settings: Settings,
                                                           tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "only.yaml").write_text(yaml.safe_dump(_renamed("fstab", "only")))
    settings = dataclasses.replace(catalog_settings, playbooks_dir=own)
    assert [(e.name, e.origin) for e in catalog_entries(settings)] == [("only", Origin.SHIPPED)]
