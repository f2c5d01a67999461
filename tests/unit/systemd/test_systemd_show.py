"""The one systemctl-show parser: several units, missing keys, hostile output."""

from __future__ import annotations

from orchestrator.systemd import MAX_VALUE, UnitInfo, parse_show, parse_show_one

STATES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState")


def test_one_unit_info_per_block_in_the_order_printed() -> None:
    text = ("Id=db.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nUnitFileState=enabled\n"
            "\n"
            "Id=gone.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n")
    db, gone = parse_show(text, STATES)
    assert (db.id, db.load_state, db.active_state, db.sub_state, db.unit_file_state) == (
        "db.service", "loaded", "failed", "failed", "enabled")
    assert db.is_loaded and not gone.is_loaded
    assert (gone.id, gone.load_state, gone.unit_file_state) == ("gone.service", "not-found", "")
    assert gone.properties == {"Id": "gone.service", "LoadState": "not-found", "ActiveState": "inactive",
                               "SubState": "dead", "UnitFileState": ""}


def test_several_blank_lines_end_a_block_once_and_a_garbage_block_keeps_its_place() -> None:
    text = "\n\nActiveState=active\n\n\n\nno equals here\n\nActiveState=failed\n\n"
    assert [u.active_state for u in parse_show(text, STATES)] == ["active", "", "failed"]


def test_missing_keys_are_empty_fields_and_absent_properties() -> None:
    info = parse_show_one("ActiveState=active\n", ("ActiveState", "LoadState", "NRestarts"))
    assert (info.active_state, info.load_state, info.id) == ("active", "", "")
    assert info.properties == {"ActiveState": "active"}
    assert not info.is_loaded


def test_an_empty_answer_is_no_unit() -> None:
    assert parse_show("", STATES) == ()
    assert parse_show_one("  \n", STATES) == UnitInfo()


def test_only_requested_keys_are_kept_and_the_first_occurrence_wins() -> None:
    text = ("ActiveState=active\nActiveState=failed\nEvil=1\nno equals sign\n"
            "Result=a=b\nSubState=" + "x" * 10_000 + "\x07\n")
    props = parse_show_one(text, ("ActiveState", "Result", "SubState")).properties
    assert set(props) == {"ActiveState", "Result", "SubState"}
    assert props["ActiveState"] == "active"
    assert props["Result"] == "a=b"
    assert len(props["SubState"]) <= MAX_VALUE
    assert "\x07" not in props["SubState"]


def test_hostile_values_are_escaped_in_properties_and_never_fill_a_state_field() -> None:
    text = ("Id=../../etc/passwd x\nLoadState=loaded\x1b[2J\nActiveState=ACTIVE\nSubState=" + "a" * 40
            + "\nUnitFileState=enabled;rm\n")
    info = parse_show_one(text, STATES)
    assert (info.id, info.load_state, info.active_state, info.sub_state, info.unit_file_state) == (
        "", "", "", "", "")
    assert info.properties["LoadState"] == "loaded\\x1b[2J"


def test_a_larger_max_value_keeps_long_values_whole() -> None:
    exec_start = "{ path=/usr/bin/python3 ; argv[]=" + "x" * 1000 + " }"
    info = parse_show_one(f"ExecStart={exec_start}\n", ("ExecStart",), max_value=4096)
    assert info.properties["ExecStart"] == exec_start


def test_a_flood_of_blocks_is_cut() -> None:
    text = "ActiveState=active\n\n" * 10_000
    assert 0 < len(parse_show(text, STATES)) <= 512
