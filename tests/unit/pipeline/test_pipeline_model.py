"""The plain objects the pipeline passes around (orchestrator/model.py).

They would mirror the package at tests/unit/test_model.py; they live beside the pipeline that uses them.
"""

from __future__ import annotations

import re

import pytest

from orchestrator import errors
from orchestrator.model import RUN_EXIT_CODES, Issue, IssueKind, ProbeResult, SessionStatus, Severity

BASE = Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t", "nginx: [emerg] x",
             "config:nginx", {"output": "line 3"})


def test_fingerprint_is_16_hex_and_the_id_embeds_it() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", BASE.fingerprint)
    assert BASE.id == f"nginx:config_invalid:{BASE.fingerprint[:8]}"


def test_fingerprint_ignores_what_was_observed() -> None:
    other = Issue("nginx", IssueKind.CONFIG_INVALID, Severity.WARNING, "nginx -t",
                  "a different message", "another-probe", {"output": "something else"})
    assert other.fingerprint == BASE.fingerprint
    assert other.id == BASE.id


@pytest.mark.parametrize(
    "changed",
    [
        Issue("sampleapp", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -t", "", ""),
        Issue("nginx", IssueKind.UNIT_FAILED, Severity.CRITICAL, "nginx -t", "", ""),
        Issue("nginx", IssueKind.CONFIG_INVALID, Severity.CRITICAL, "nginx -T", "", ""),
    ],
    ids=["component", "kind", "subject"],
)
def test_fingerprint_changes_with_what_is_broken(changed: Issue) -> None:
    assert changed.fingerprint != BASE.fingerprint


def test_fields_cannot_run_into_each_other() -> None:
    # "ab" + "c" and "a" + "bc" are different things; the separator keeps them apart.
    first = Issue("ab", IssueKind.UNIT_FAILED, Severity.CRITICAL, "c", "", "")
    second = Issue("a", IssueKind.UNIT_FAILED, Severity.CRITICAL, "bc", "", "")
    assert first.fingerprint != second.fingerprint


def test_from_result_copies_the_evidence() -> None:
    result = ProbeResult("unit:nginx.service", "nginx", False, IssueKind.UNIT_FAILED, Severity.CRITICAL,
                         "nginx.service", "failed", {"Result": "exit-code"})
    found = Issue.from_result(result)
    assert (found.component, found.kind, found.subject, found.probe) == (
        "nginx", IssueKind.UNIT_FAILED, "nginx.service", "unit:nginx.service")
    assert found.evidence == result.evidence
    assert found.evidence is not result.evidence
    assert found.as_dict()["fingerprint"] == found.fingerprint


def test_every_status_has_an_exit_code() -> None:
    assert set(RUN_EXIT_CODES) == set(SessionStatus)


def test_healthy_and_repaired_exit_zero_the_rest_are_distinct() -> None:
    assert RUN_EXIT_CODES[SessionStatus.HEALTHY] == 0
    assert RUN_EXIT_CODES[SessionStatus.REPAIRED] == 0
    failures = [code for status, code in RUN_EXIT_CODES.items()
                if status not in (SessionStatus.HEALTHY, SessionStatus.REPAIRED)]
    assert 0 not in failures
    assert len(set(failures)) == len(failures)


def _error_classes(cls: type[errors.VmRepairError]) -> list[type[errors.VmRepairError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _error_classes(child))]


def test_run_exit_codes_do_not_collide_with_error_exit_codes() -> None:
    error_codes = {cls.exit_code for cls in _error_classes(errors.VmRepairError)}
    assert not error_codes & set(RUN_EXIT_CODES.values())
