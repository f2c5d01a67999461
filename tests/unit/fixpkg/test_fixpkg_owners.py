"""OwnerMap: VM owner names -> target ids, from the capture first, then the target's accounts."""

from __future__ import annotations

import pytest

from orchestrator.agent.api import FileEntry
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg.owners import OwnerMap


def entry(path: str, owner: str, group: str, uid: int = 0, gid: int = 0) -> FileEntry:
    return FileEntry(path, "dir", 0o750, uid, gid, owner, group, 0, 1.0)


def test_a_captured_owner_keeps_its_captured_id_over_the_account_database() -> None:
    owners = OwnerMap([entry("/etc/app", "app", "app", 101, 104)], users={"app": 999}, groups={"app": 998})
    assert owners.target_ids(entry("/etc/app/x", "app", "app", 5, 5)) == (101, 104)


def test_an_owner_of_nothing_captured_is_found_in_the_targets_accounts() -> None:
    # The target lost /var/lib/app entirely: no captured entry names its owner.
    owners = OwnerMap([], users={"app": 101}, groups={"app": 104})
    assert owners.target_ids(entry("/var/lib/app", "app", "app", 7, 7)) == (101, 104)


def test_an_owner_the_target_does_not_know_is_refused() -> None:
    with pytest.raises(FixPackageError, match=r"'ghost'.*is not an account of the target"):
        OwnerMap([], users={"app": 101}).target_ids(entry("/var/lib/app", "ghost", "root"))
