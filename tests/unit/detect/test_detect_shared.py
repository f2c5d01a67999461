"""RunShared: one load per scope, shared by concurrent probes; fresh outside and after a scope."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.detect.detector import run_probes, slow_indexes
from orchestrator.detect.shared import RunShared
from orchestrator.errors import ConnectError


class Counter:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            number = self.calls
        time.sleep(self.delay)
        return number


def test_outside_a_scope_every_get_loads() -> None:
    load = Counter()
    shared = RunShared("n", load)
    assert [shared.get(), shared.get()] == [1, 2]


def test_inside_a_scope_the_first_get_loads_and_the_others_reuse_it() -> None:
    load = Counter()
    shared = RunShared("n", load)
    with shared.scope():
        assert [shared.get(), shared.get()] == [1, 1]
    with shared.scope():
        assert shared.get() == 2   # the next run asks afresh
    assert load.calls == 2


def test_concurrent_probes_wait_for_the_one_load() -> None:
    load = Counter(delay=0.05)
    shared = RunShared("n", load)
    with shared.scope():
        assert run_probes([shared.get] * 8, workers=4) == [1] * 8
    assert load.calls == 1


def test_each_run_keeps_its_own_value_even_when_runs_overlap() -> None:
    """The stability rounds and the regression check run at once: a round must not judge with the
    answer the other run loaded seconds ago."""
    import threading

    shared = RunShared("n", Counter())
    with shared.scope():
        assert shared.get() == 1
        with shared.scope():          # another run starts inside this one's block
            assert shared.get() == 2
        assert shared.get() == 1      # ours is still ours
    seen: list[int] = []

    def other_run() -> None:
        with shared.scope():
            seen.extend(run_probes([shared.get, shared.get]))

    with shared.scope():
        assert shared.get() == 3
        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join(timeout=5)
        assert shared.get() == 3
    assert seen == [4, 4]
    assert shared.get() == 5          # outside any run: loaded every time


def test_a_failed_load_is_not_remembered() -> None:
    answers: list[ConnectError | int] = [ConnectError("gone", host="t"), 7]

    def load() -> int:
        answer = answers.pop(0)
        if isinstance(answer, ConnectError):
            raise answer
        return answer

    shared = RunShared("n", load)
    with shared.scope():
        with pytest.raises(ConnectError):
            shared.get()
        assert shared.get() == 7


def test_a_loaded_none_is_shared_too() -> None:
    calls: list[int] = []
    shared: RunShared[None] = RunShared("n", lambda: calls.append(1))
    with shared.scope():
        shared.get()
        shared.get()
    assert calls == [1]


def test_slow_probes_start_first_and_results_keep_the_given_order() -> None:
    started: list[str] = []
    gate = threading.Event()

    def probe(name: str) -> Callable[[], str]:
        def run() -> str:
            started.append(name)
            if name == "dpkg:nginx":   # holds its worker: the short ones share the other
                gate.wait(5)
            return name
        return run

    names = ["disk:/", "unit:a.service", "config:nginx", "dpkg:nginx", "http:x"]
    slow = slow_indexes(names)
    assert slow == {2, 3}
    timer = threading.Timer(0.2, gate.set)
    timer.start()
    assert run_probes([probe(n) for n in names], workers=2, slow=slow) == names
    assert set(started[:2]) == {"config:nginx", "dpkg:nginx"}
    timer.join()
