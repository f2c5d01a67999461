"""Remote hypervisors: the URI libvirt opens for one, its pool, and the probe placement reads.

``qemu+ssh://`` in config is opened as ``qemu+libssh://`` with the ``ssh:`` key and known_hosts:
libvirt's plain ``ssh`` transport runs the OpenSSH client, which ignores a ``known_hosts`` URI parameter
and would read (and, when asked, write) the invoking user's ``~/.ssh``; its libssh transport takes
``keyfile``, ``known_hosts`` and ``known_hosts_verify=normal`` (an unknown or changed host key is
refused, no prompt) and runs no external program here. The URI is built from validated parts with
every parameter value percent-encoded; no shell ever sees it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import quote

from orchestrator.config.hypervisors import HypervisorSettings
from orchestrator.errors import HypervisorError
from orchestrator.hypervisor.connection import LibvirtConnection
from orchestrator.hypervisor.domain_xml import DOMAIN_PREFIX
from orchestrator.hypervisor.placement import HypervisorLoad
from orchestrator.hypervisor.pool import ImagePool
from orchestrator.hypervisor.sync import SyncPool, read_manifest

_SSH_URI_RE = re.compile(r"^qemu\+ssh://(?:(?P<user>[^@/]+)@)?(?P<host>[^/]+?)(?::(?P<port>\d+))?/system$")


def libvirt_open_uri(hv: HypervisorSettings) -> str:
    """The URI :class:`LibvirtConnection` opens for ``hv`` (already validated by config)."""
    if not hv.is_remote:
        return hv.uri
    match = _SSH_URI_RE.match(hv.uri)
    if match is None or hv.ssh is None:  # config validation makes both impossible
        raise HypervisorError(f"{hv.name}: unusable uri {hv.uri!r}")
    user = match.group("user") or hv.ssh.user
    port = match.group("port") or str(hv.ssh.port)
    params = {
        "keyfile": str(hv.ssh.identity_file),
        "known_hosts": str(hv.ssh.known_hosts),
        "known_hosts_verify": "normal",
        "sshauth": "privkey",
    }
    query = "&".join(f"{key}={quote(value, safe='/')}" for key, value in params.items())
    return f"qemu+libssh://{user}@{match.group('host')}:{port}/system?{query}"


def pool_name(hv: HypervisorSettings) -> str:
    return f"vmrepair-{hv.name}"


def image_pool(hv: HypervisorSettings, conn: LibvirtConnection) -> ImagePool:
    return ImagePool(conn, pool_name(hv), PurePosixPath(str(hv.image_dir)))


def probe_hypervisor(hv: HypervisorSettings, conn: LibvirtConnection,
                     local_content: frozenset[str] = frozenset(), *,
                     pool: SyncPool | None = None) -> HypervisorLoad:
    """Running vmrepair domains and synced content ids of ``hv``, read through libvirt. A local entry
    (``qemu:///system``) holds ``local_content``: everything in this machine's image store.

    Raises:
        HypervisorError: the hypervisor or its pool cannot be read (placement skips it).
    """
    running = 0
    for dom in conn.domains():
        if dom.name.startswith(DOMAIN_PREFIX) and dom.is_active() and dom.metadata() is not None:
            running += 1
    if not hv.is_remote:
        return HypervisorLoad(hv.name, running, hv.max_vms, local_content)
    complete = read_manifest(pool or image_pool(hv, conn))
    ids = frozenset(volume.split(".", 1)[0] for volume in complete)
    return HypervisorLoad(hv.name, running, hv.max_vms, ids)
