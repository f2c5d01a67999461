"""Transports: how vmrepair runs commands and moves files on a host (local, SSH, fake).

Implementations are imported lazily, like testinfra's backends, so ``import orchestrator.transport``
never pays for paramiko: look one up by name with :func:`get_transport_class`, or import the class
from this package (``from orchestrator.transport import ParamikoTransport``) when you need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from orchestrator.errors import TransportError
from orchestrator.transport.base import CommandResult, OutputSink, Transport

if TYPE_CHECKING:
    from orchestrator.transport.fake import FakeTransport
    from orchestrator.transport.local import LocalTransport
    from orchestrator.transport.ssh import ParamikoTransport

#: Transport name -> (module, class). The module is imported only when the name is asked for.
TRANSPORTS: dict[str, tuple[str, str]] = {
    "local": ("orchestrator.transport.local", "LocalTransport"),
    "ssh": ("orchestrator.transport.ssh", "ParamikoTransport"),
    "paramiko": ("orchestrator.transport.ssh", "ParamikoTransport"),
    "fake": ("orchestrator.transport.fake", "FakeTransport"),
}

__all__ = [
    "TRANSPORTS",
    "CommandResult",
    "FakeTransport",
    "LocalTransport",
    "OutputSink",
    "ParamikoTransport",
    "Transport",
    "get_transport_class",
]


def get_transport_class(name: str) -> type[Transport]:
    """Return the transport class registered as ``name``, importing its module on first use.

    Raises:
        TransportError: no transport has that name.
    """
    try:
        module_name, class_name = TRANSPORTS[name]
    except KeyError:
        known = ", ".join(sorted(TRANSPORTS))
        raise TransportError(f"unknown transport {name!r} (known: {known})") from None
    cls: type[Transport] = getattr(importlib.import_module(module_name), class_name)
    return cls


def __getattr__(name: str) -> type[Transport]:
    # PEP 562: resolve the implementation classes on first access only.
    for module_name, class_name in TRANSPORTS.values():
        if class_name == name:
            cls: type[Transport] = getattr(importlib.import_module(module_name), class_name)
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
