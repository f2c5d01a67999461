"""A session's owner: alive only on this boot, with this pid, as the same process."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from orchestrator.session.owner import Owner, current_boot_id, is_alive, start_ticks, this_process


def test_this_process_is_alive_and_identified() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.start_ticks > 0 and me.boot_id == current_boot_id()
    assert is_alive(me)
    assert Owner.from_meta(me.as_dict()) == me


def test_another_boot_a_dead_pid_or_another_process_with_the_pid_is_dead(dead_pid: int) -> None:
    me = this_process()
    assert not is_alive(dataclasses.replace(me, boot_id="another-boot"))
    assert not is_alive(dataclasses.replace(me, pid=dead_pid))
    assert not is_alive(dataclasses.replace(me, start_ticks=me.start_ticks + 1))


def test_an_owner_without_boot_or_start_time_is_judged_by_its_pid(dead_pid: int) -> None:
    assert is_alive(Owner(os.getpid(), ""))
    assert not is_alive(Owner(dead_pid, ""))


@pytest.mark.parametrize("data", [None, "12", {"pid": "12", "boot_id": "b"}, {"pid": 12},
                                  {"pid": 12, "boot_id": "b", "start_ticks": "late"}])
def test_a_malformed_owner_record_reads_as_unknown(data: object) -> None:
    assert Owner.from_meta(data) is None


def test_unreadable_boot_id_and_unknown_pid_read_as_unknown(tmp_path: Path, dead_pid: int) -> None:
    assert current_boot_id(tmp_path / "missing") == ""
    assert start_ticks(dead_pid) == 0
