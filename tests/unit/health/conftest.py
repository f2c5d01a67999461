"""Fixtures of the health monitor's tests (see :mod:`tests.unit.health.harness`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.health.harness import Harness, harness_factory


@pytest.fixture
def make() -> Callable[..., Harness]:
    return harness_factory()
