"""LayerRecorder.check_all: independent checks side by side, recorded in the order given."""

from __future__ import annotations

import threading
import time

from orchestrator.errors import TransportError
from orchestrator.validate.results import LayerName, LayerRecorder


def test_checks_run_side_by_side_and_are_recorded_in_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # passes only if three checks wait at once

    def meets(tag: str) -> tuple[bool, str]:
        barrier.wait()
        return True, tag

    rec = LayerRecorder(LayerName.CORE_FEATURES, time.monotonic)
    assert rec.check_all([(f"c{i}", lambda i=i: meets(f"d{i}")) for i in range(3)], workers=3)
    assert [(c.name, c.detail) for c in rec.checks] == [("c0", "d0"), ("c1", "d1"), ("c2", "d2")]


def test_a_failing_or_unanswerable_check_does_not_stop_the_others() -> None:
    def broken() -> tuple[bool, str]:
        raise TransportError("guest: connection lost")

    rec = LayerRecorder(LayerName.CORE_FEATURES, time.monotonic)
    ok = rec.check_all([("a", lambda: (False, "no")), ("b", broken), ("c", lambda: (True, "yes"))], workers=2)
    assert not ok
    assert [(c.name, c.ok, c.detail) for c in rec.checks] == [
        ("a", False, "no"), ("b", False, "could not check: guest: connection lost"), ("c", True, "yes")]


def test_one_worker_runs_them_one_after_the_other() -> None:
    seen: list[str] = []
    rec = LayerRecorder(LayerName.CORE_FEATURES, time.monotonic)
    rec.check_all([(n, lambda n=n: (seen.append(n) is None, n)) for n in "xyz"], workers=1)
    assert seen == ["x", "y", "z"]
    assert all(c.ok for c in rec.checks)
