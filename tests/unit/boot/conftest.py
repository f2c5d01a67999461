"""Fixtures for the boot tests."""

from __future__ import annotations

from tests.unit.zones import berlin

__all__ = ["berlin"]
