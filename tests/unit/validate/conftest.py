"""Fixtures of the validation tests (the fakes themselves are in :mod:`tests.unit.validate.fakes`)."""

from __future__ import annotations

import pytest

from orchestrator.transport.fake import FakeTransport
from tests.unit.validate.fakes import FakeClock, FakeGuest, FakeProbes


@pytest.fixture
def guest() -> FakeGuest:
    return FakeGuest()


@pytest.fixture
def transport(guest: FakeGuest) -> FakeTransport:
    return FakeTransport(guest, host="vm")


@pytest.fixture
def probes() -> FakeProbes:
    return FakeProbes()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
