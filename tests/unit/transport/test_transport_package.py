from __future__ import annotations

import subprocess
import sys

import pytest

import orchestrator.transport
from orchestrator.errors import TransportError
from orchestrator.transport import get_transport_class
from orchestrator.transport.fake import FakeTransport
from orchestrator.transport.local import LocalTransport


def test_importing_the_package_does_not_import_paramiko() -> None:
    code = (
        "import sys, orchestrator.transport, orchestrator.transport.local, "
        "orchestrator.transport.fake; print(sorted(m for m in sys.modules if 'paramiko' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_classes_are_found_by_name() -> None:
    assert get_transport_class("local") is LocalTransport
    assert get_transport_class("fake") is FakeTransport
    assert get_transport_class("ssh").__name__ == "ParamikoTransport"
    assert orchestrator.transport.LocalTransport is LocalTransport


def test_unknown_name_lists_the_known_ones() -> None:
    known = r"\(known: fake, local, paramiko, ssh\)"
    with pytest.raises(TransportError, match=rf"unknown transport 'telnet' {known}"):
        get_transport_class("telnet")
    with pytest.raises(AttributeError):
        _ = orchestrator.transport.NoSuchThing
