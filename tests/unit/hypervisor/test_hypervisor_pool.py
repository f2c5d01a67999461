"""ImagePool on libvirt's test:///default driver (which has no stream upload: sync is tested with a
fake pool in test_hypervisor_sync.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import libvirt
import pytest

from orchestrator.errors import HypervisorError
from orchestrator.hypervisor.connection import LibvirtConnection
from orchestrator.hypervisor.pool import ImagePool, pool_xml

POOL = "vmrepair-test"


@pytest.fixture
def conn(libvirt_conn: LibvirtConnection) -> Iterator[LibvirtConnection]:
    yield libvirt_conn
    _drop_pool(libvirt_conn.conn, POOL)


def _drop_pool(raw: Any, name: str) -> None:
    try:
        pool = raw.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    for vol in pool.listAllVolumes(0):
        vol.delete(0)
    if pool.isActive():
        pool.destroy()
    pool.undefine()


def test_ensure_defines_a_root_only_dir_pool_at_image_dir(conn: LibvirtConnection) -> None:
    pool = ImagePool(conn, POOL, PurePosixPath("/srv/vmrepair"))
    assert pool.volumes() == set()
    raw = conn.conn.storagePoolLookupByName(POOL)
    assert raw.isActive()
    root = ET.fromstring(raw.XMLDesc(0))  # noqa: S314 - from the test driver
    assert (root.get("type"), root.findtext("target/path")) == ("dir", "/srv/vmrepair")


def test_pool_xml_is_root_only() -> None:
    root = ET.fromstring(pool_xml("p", PurePosixPath("/srv/x")))  # noqa: S314 - ours
    assert (root.findtext("target/permissions/mode"), root.findtext("target/permissions/owner")) == (
        "0700", "0")


def test_a_pool_of_that_name_elsewhere_is_refused(conn: LibvirtConnection) -> None:
    ImagePool(conn, POOL, PurePosixPath("/srv/a")).ensure()
    with pytest.raises(HypervisorError) as info:
        ImagePool(conn, POOL, PurePosixPath("/srv/b")).ensure()
    assert info.value.message == f"storage pool {POOL} exists at /srv/a, not at /srv/b"


def test_linked_clone_has_the_backing_volume_as_backing_store(conn: LibvirtConnection) -> None:
    pool = ImagePool(conn, POOL, PurePosixPath("/srv/vmrepair"))
    pool.ensure()
    conn.conn.storagePoolLookupByName(POOL).createXML(
        "<volume><name>aa.qcow2</name><capacity unit='bytes'>2147483648</capacity>"
        "<target><format type='qcow2'/></target></volume>", 0)

    path = pool.linked_clone("vm-web1.qcow2", "aa.qcow2", 2147483648)

    assert path == PurePosixPath("/srv/vmrepair/vm-web1.qcow2")
    vol = conn.conn.storagePoolLookupByName(POOL).storageVolLookupByName("vm-web1.qcow2")
    root = ET.fromstring(vol.XMLDesc(0))  # noqa: S314 - from the test driver
    assert root.findtext("backingStore/path") == "/srv/vmrepair/aa.qcow2"
    assert root.findtext("capacity") == "2147483648"
    assert pool.volumes() == {"aa.qcow2", "vm-web1.qcow2"}

    pool.delete("vm-web1.qcow2")
    pool.delete("vm-web1.qcow2")  # already gone: fine
    assert pool.volumes() == {"aa.qcow2"}


def test_upload_errors_are_mapped(conn: LibvirtConnection, tmp_path: Any) -> None:
    local = tmp_path / "f"
    local.write_bytes(b"data")
    pool = ImagePool(conn, POOL, PurePosixPath("/srv/vmrepair"))
    with pytest.raises(HypervisorError, match=r"upload .* not supported"):
        pool.upload("x.qcow2", local)
    assert "x.qcow2" not in pool.volumes()  # the half-made volume is removed
