"""`metrics:` section of config.yaml: where the Prometheus textfile goes, and the optional TCP port.

The textfile is for node_exporter's textfile collector (Debian's ``prometheus-node-exporter`` reads
``/var/lib/prometheus/node-exporter``); the port is for a Prometheus without node_exporter. The port
serves loopback only unless ``allow_remote`` says otherwise: metrics name components, targets and
failures, which is reconnaissance for anyone else on the network, and the port has no
authentication (the unix socket checks the peer's uid; TCP cannot).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.config.values import AbsolutePath

#: Debian's node_exporter textfile directory (package prometheus-node-exporter).
DEFAULT_TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) as (address, port); the host must be an IP address.

    A name would be resolved at every start and could resolve to anything, so only literal addresses
    are taken, and so whether the port is loopback is known when the file loads.

    Raises:
        ValueError: not ``ADDRESS:PORT`` with a literal IP address and a port from 1 to 65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"{text!r}: write it as ADDRESS:PORT, e.g. 127.0.0.1:9707")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (names are not resolved)") from None
    return str(address), port


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


class MetricsSettings(_Strict):
    """Where vmrepair's Prometheus metrics go (see orchestrator.metrics)."""

    #: ``<textfile_dir>/vmrepair.prom`` is rewritten by the daemon and after `vmrepair run`/`detect`;
    #: when the directory does not exist (no node_exporter) nothing is written.
    textfile_dir: AbsolutePath = DEFAULT_TEXTFILE_DIR
    #: How often the daemon rewrites the textfile.
    textfile_interval_s: float = Field(default=60.0, ge=5, le=3600)
    #: ``ADDRESS:PORT`` on which the daemon also serves /metrics over HTTP; None: not served.
    listen: str | None = None
    #: Serve ``listen`` on an address other than loopback (there is no authentication on it).
    allow_remote: bool = False

    @model_validator(mode="after")
    def _check_listen(self) -> Self:
        if self.listen is None:
            return self
        address, _port = parse_listen(self.listen)
        if not is_loopback(address) and not self.allow_remote:
            raise ValueError(f"listen {self.listen!r} is not a loopback address; the metrics port has no "
                             "authentication, so use 127.0.0.1 (and a local Prometheus or node_exporter), "
                             "or set allow_remote: true if a firewall guards it")
        return self

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return None if self.listen is None else parse_listen(self.listen)
