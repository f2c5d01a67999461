"""Fixtures of the quarantine tests: a fresh scripted target per test (see :mod:`.target`)."""

from __future__ import annotations

import pytest

from tests.unit.quarantine.target import Target, make_target


@pytest.fixture
def target() -> Target:
    return make_target()
