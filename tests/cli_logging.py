"""A fixture for every suite that runs the CLI's ``main()`` in-process: main() calls
logging.basicConfig, which must not leak into the tests that follow. Conftests import it (which
registers it, autouse, for their directory)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
