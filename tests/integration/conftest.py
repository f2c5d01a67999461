"""Fixtures for tests that drive real libvirtd + QEMU guests booted from the built template.

They skip only when a prerequisite is missing, and say which; `make test` installs and starts all of
them, so in CI they run.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator

import pytest

from orchestrator.app import App
from orchestrator.errors import HypervisorUnavailableError
from tests.integration.helpers import booted_patient, unique_name

pytestmark = pytest.mark.integration

# paramiko logs every refused banner while a guest boots as an ERROR with a traceback; the transport
# maps those failures into our errors, so its own log is noise in test reports.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (libvirt qemu:///system, root-only VM directories)"
    for binary in ("qemu-system-x86_64", "qemu-img"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (make setup installs it)"
    return None


@pytest.fixture(scope="session")
def app() -> Iterator[App]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    application = App.from_env()
    try:
        application.conn.version()
    except HypervisorUnavailableError as exc:
        pytest.skip(f"libvirtd is not answering: {exc.message} (make setup starts it)")
    # Not a skip: with libvirt and QEMU present, a missing template means setup is broken.
    application.images.require(application.settings.default_template)
    # A run killed earlier on this machine (a CI timeout, a ^C) leaves its VMs defined; every test
    # that checks for leftovers would then fail for that run, not for its own.
    reaped = application.vms.reap()
    if reaped:
        logging.getLogger(__name__).warning("reaped VMs a killed earlier run left: %s", reaped)
    yield application
    application.close()


@pytest.fixture(scope="module")
def guest(app: App) -> Iterator[str]:
    """A booted guest for the whole module; always destroyed, even when a test fails."""
    name = unique_name("it")
    app.vms.up(name)
    try:
        yield name
    finally:
        app.vms.destroy(name)


@pytest.fixture(scope="session")
def probe_patient(app: App) -> Iterator[str]:
    """One default-template patient, snapshot ``healthy``, shared by the modules that only probe,
    detect or record baselines on it (component, host and discovery probes), each test starting
    from the snapshot through ``fresh_patient``. They start no repair run, so no outcome history,
    transaction or reboot record of this target can steer another module's test; sharing saves
    a cold boot (~25 s under TCG) per module. Modules that run repairs keep a patient of their own."""
    yield from booted_patient(app, "probe", "healthy")
