"""Quarantine and release tell people (a ``quarantined`` and a ``released`` event), once each, and a
refused quarantine tells nobody."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.errors import QuarantineError
from orchestrator.quarantine import quarantine_component, release
from tests.unit.notify.conftest import Recorder
from tests.unit.quarantine.target import NGINX, ROOT, WATCH, Target

MOMENT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def isolate(target: Target, recorder: Recorder) -> None:
    quarantine_component(target.transport, target.agent, NGINX, "3 escalations and still failing",
                         audit=target.audit, watch=WATCH, now=lambda: MOMENT, notify=recorder)


def test_quarantine_and_release_are_announced(target: Target) -> None:
    recorder = Recorder()
    isolate(target, recorder)
    release(target.transport, target.agent, "nginx", audit=target.audit, watch=WATCH, now=lambda: MOMENT,
            sleep=lambda _s: None, notify=recorder)
    assert recorder.kinds() == ["quarantined", "released"]
    held, freed = recorder.events
    assert (held.component, held.target) == ("nginx", target.transport.host)
    assert held.summary.endswith("3 escalations and still failing; release with "
                                 "`vmrepair quarantine release nginx`")
    assert held.details["directory"] == f"{ROOT}/nginx/20260102T030405Z"
    assert held.details["units"] == ["nginx.service"]
    assert (freed.details["restored"], freed.details["verified"]) == (5, True)
    assert freed.summary == (f"nginx released from quarantine on {target.transport.host}: released and "
                             "verified: its probes pass")
    # Their own audit records stay the only ones: the log channel will not write them again.
    assert held.is_audited and freed.is_audited


def test_a_refused_quarantine_is_not_announced(target: Target) -> None:
    recorder = Recorder()
    isolate(target, recorder)
    with pytest.raises(QuarantineError, match="already quarantined"):
        isolate(target, recorder)
    assert recorder.kinds() == ["quarantined"]
