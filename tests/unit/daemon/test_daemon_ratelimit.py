"""LogBudget: a burst per window, the rest counted and reported with the next admitted event."""

from __future__ import annotations

from orchestrator.daemon.http import loggable
from orchestrator.daemon.ratelimit import LogBudget


def test_burst_then_suppressed_then_reported_in_the_next_window() -> None:
    now = [0.0]
    budget = LogBudget(burst=2, window_s=10, clock=lambda: now[0])
    assert [budget.admit() for _ in range(5)] == [0, 0, None, None, None]
    now[0] = 10.0
    assert [budget.admit(), budget.admit(), budget.admit()] == [3, 0, None]


def test_loggable_escapes_control_characters_and_caps() -> None:
    assert loggable("/a\nb\x1b[0m\x7f") == "/a\\nb\\x1b[0m\\x7f"
    assert loggable("x" * 10, limit=4) == "xxxx… (6 more characters)"
    assert loggable("/ok") == "/ok"
