"""LibvirtConnection / DomainHandle on libvirt's ``test:///default`` driver.

Every libvirt error must leave the hypervisor package as a HypervisorError subclass: checked both by
reading the source (each libvirt call sits inside ``_mapped`` or a ``try`` that catches libvirtError)
and by calling every public method on a stale handle.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import textwrap
from pathlib import Path
from typing import Any

import libvirt
import pytest

from orchestrator.errors import (
    HypervisorError,
    HypervisorUnavailableError,
    SnapshotError,
    VmNotFoundError,
)
from orchestrator.hypervisor import connection as connection_module
from orchestrator.hypervisor.connection import DomainHandle, LibvirtConnection
from orchestrator.hypervisor.domain_xml import (
    DirectKernelBoot,
    DiskSpec,
    DomainSpec,
    InstanceMetadata,
    UserNetSpec,
)
from orchestrator.hypervisor.pool import ImagePool

METADATA = InstanceMetadata(name="t1", template="debian-12", ssh_port=40022, vm_dir="/vms/t1")


def _spec(name: str = "vmrepair-t1", domain_type: str = "test") -> DomainSpec:
    return DomainSpec(
        name=name, domain_type=domain_type, memory_mib=256, vcpus=1,
        boot=DirectKernelBoot(Path("/img/vmlinuz"), Path("/img/initrd.img"), "console=ttyS0"),
        disk=DiskSpec(Path("/vms/t1/disk.qcow2")), net=UserNetSpec(40022),
        serial_log=Path("/vms/t1/serial.log"), metadata=METADATA,
    )


def _define(conn: LibvirtConnection, domain_type: str = "test") -> DomainHandle:
    spec = _spec(domain_type=domain_type)
    return conn.define(spec.to_xml(), spec.name)


def test_version(libvirt_conn: LibvirtConnection) -> None:
    major, minor, micro = libvirt_conn.version().split(".")
    assert int(major) >= 1
    assert minor.isdigit()
    assert micro.isdigit()


@pytest.mark.parametrize("domain_type", ["test", "qemu"])
def test_define_lookup_and_metadata(libvirt_conn: LibvirtConnection, domain_type: str) -> None:
    dom = _define(libvirt_conn, domain_type)
    assert dom.name == "vmrepair-t1"
    found = libvirt_conn.lookup("vmrepair-t1")
    assert found is not None
    assert found.metadata() == METADATA
    assert found.state_name() == "shut off"
    assert not found.is_active()
    assert "vmrepair-t1" in [d.name for d in libvirt_conn.domains()]
    assert "<kernel>/img/vmlinuz</kernel>" in found.xml()


def test_domain_without_our_metadata(libvirt_conn: LibvirtConnection) -> None:
    dom = libvirt_conn.lookup("test")  # the driver's own domain
    assert dom is not None
    assert dom.metadata() is None


def test_lifecycle_with_snapshots(libvirt_conn: LibvirtConnection) -> None:
    dom = _define(libvirt_conn)
    dom.start()
    assert dom.is_active()
    assert dom.state_name() == "running"

    dom.snapshot_create("clean", "before the fault <&>")
    dom.snapshot_create("broken")
    snaps = dom.snapshots()
    assert sorted(s.name for s in snaps) == ["broken", "clean"]
    assert [s.name for s in snaps if s.is_current] == ["broken"]
    assert all(s.created > 0 for s in snaps)

    dom.snapshot_revert("clean")
    assert [s.name for s in dom.snapshots() if s.is_current] == ["clean"]
    dom.snapshot_delete("broken")
    assert [s.name for s in dom.snapshots()] == ["clean"]

    dom.reboot()
    dom.force_stop()
    assert dom.state_name() == "shut off"
    dom.force_stop()  # a no-op on a stopped domain
    dom.undefine()  # also drops the snapshot metadata
    assert libvirt_conn.lookup("vmrepair-t1") is None


def test_lookup_of_missing_domain_is_none(libvirt_conn: LibvirtConnection) -> None:
    assert libvirt_conn.lookup("vmrepair-absent") is None


def test_revert_to_missing_snapshot_is_a_snapshot_error(libvirt_conn: LibvirtConnection) -> None:
    dom = _define(libvirt_conn)
    with pytest.raises(SnapshotError) as info:
        dom.snapshot_revert("nope")
    assert info.value.message.startswith("revert to snapshot 'nope': ")
    assert info.value.domain == "vmrepair-t1"


def test_delete_of_missing_snapshot_is_a_snapshot_error(libvirt_conn: LibvirtConnection) -> None:
    with pytest.raises(SnapshotError, match=r"^delete snapshot 'nope': "):
        _define(libvirt_conn).snapshot_delete("nope")


def test_invalid_xml_is_a_hypervisor_error(libvirt_conn: LibvirtConnection) -> None:
    with pytest.raises(HypervisorError, match=r"^define domain: ") as info:
        libvirt_conn.define("<domain type='test'><name>x</name>", "x")
    assert not isinstance(info.value, HypervisorUnavailableError)
    assert isinstance(info.value.__cause__, libvirt.libvirtError)


def test_unreachable_daemon_names_the_remedy(tmp_path: Path) -> None:
    # A socket that does not exist: fails like a stopped libvirtd, without touching the real one.
    uri = f"qemu+unix:///system?socket={tmp_path / 'libvirt-sock'}"
    conn = LibvirtConnection(uri)
    with pytest.raises(HypervisorUnavailableError) as info:
        conn.version()
    assert info.value.message.startswith(f"cannot connect to libvirt at {uri}: ")
    assert info.value.remedy is not None
    assert "libvirtd" in info.value.remedy
    for call in (lambda: conn.lookup("x"), conn.domains, lambda: conn.define("<d/>", "x")):
        with pytest.raises(HypervisorUnavailableError):
            call()
    conn.close()  # never opened: nothing to close


def test_close_is_idempotent_and_reopens_lazily(libvirt_conn: LibvirtConnection) -> None:
    assert libvirt_conn.version()
    libvirt_conn.close()
    libvirt_conn.close()
    assert libvirt_conn.version()


# -- completeness of the error mapping ------------------------------------------------------------

#: Arguments for every public method; a new public method must be added here (and so gets tested).
DOMAIN_CALLS: dict[str, tuple[Any, ...]] = {
    "is_active": (), "state_name": (), "metadata": (), "start": (), "reboot": (),
    "force_stop": (), "undefine": (), "snapshot_create": ("s",), "snapshots": (),
    "snapshot_revert": ("s",), "snapshot_delete": ("s",), "xml": (),
    "save_state": (Path("/nonexistent/state.sav"),),
}


def _public_methods(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_call_table_covers_every_public_method() -> None:
    assert set(DOMAIN_CALLS) == _public_methods(DomainHandle)


@pytest.mark.parametrize("method", sorted(DOMAIN_CALLS))
def test_stale_handle_raises_only_hypervisor_errors(
    libvirt_conn: LibvirtConnection, method: str
) -> None:
    dom = _define(libvirt_conn)
    libvirt_conn.lookup(dom.name).undefine()  # type: ignore[union-attr]
    with pytest.raises(HypervisorError) as info:
        getattr(dom, method)(*DOMAIN_CALLS[method])
    assert isinstance(info.value, VmNotFoundError)
    assert info.value.domain == "vmrepair-t1"


def _is_libvirt_call(node: ast.Call) -> bool:
    """A call on self._dom / self.conn / self._conn (or chained from one), or on the libvirt module."""
    target: ast.AST = node.func
    while isinstance(target, ast.Attribute | ast.Call):
        value = target.value if isinstance(target, ast.Attribute) else target.func
        if (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
                and value.value.id == "self" and value.attr in {"_dom", "conn", "_conn", "_pool"}):
            return True
        target = value
    return isinstance(target, ast.Name) and target.id == "libvirt"


_SUPPRESS_LIBVIRT = "contextlib.suppress(libvirt.libvirtError)"


def _guards(node: ast.AST, child: ast.AST) -> bool:
    """Does ``node`` map libvirtError for ``child`` (one of its descendants)?"""
    if isinstance(node, ast.With):
        for item in node.items:
            expr = item.context_expr
            if not isinstance(expr, ast.Call):
                continue
            func = ast.unparse(expr.func)
            if func.rsplit(".", 1)[-1] == "_mapped" or ast.unparse(expr) == _SUPPRESS_LIBVIRT:
                return True
    if isinstance(node, ast.Try) and any(child is stmt for stmt in node.body):
        return any(handler.type is not None and "libvirt.libvirtError" in ast.unparse(handler.type)
                   for handler in node.handlers)
    return False


def _unguarded_libvirt_calls(cls: type) -> list[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    unguarded = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _is_libvirt_call(node):
            continue
        child: ast.AST = node
        while child in parents and not _guards(parents[child], child):
            child = parents[child]
        if child not in parents:
            unguarded.append(ast.unparse(node))
    return unguarded


@pytest.mark.parametrize("cls", [DomainHandle, LibvirtConnection, ImagePool], ids=lambda c: c.__name__)
def test_every_libvirt_call_is_mapped(cls: type) -> None:
    assert _unguarded_libvirt_calls(cls) == []


def test_the_source_check_finds_an_unmapped_call() -> None:
    class Leaky:
        def __init__(self, dom: Any) -> None:
            self._dom = dom

        def ok(self) -> None:
            with connection_module._mapped("x"):
                self._dom.create()

        def leak(self) -> str:
            return str(self._dom.XMLDesc(0))

    assert _unguarded_libvirt_calls(Leaky) == ["self._dom.XMLDesc(0)"]


def test_default_error_handler_is_silenced(
    libvirt_conn: LibvirtConnection, capfd: pytest.CaptureFixture[str]
) -> None:
    with contextlib.suppress(HypervisorError):
        _define(libvirt_conn).snapshot_revert("nope")
    assert capfd.readouterr().err == ""


class _LosesTheFirstError:
    """A libvirt connection whose first lookup fails the way a GC finalizer makes it fail: the thread's
    last error was reset before libvirt-python read it, so the libvirtError carries no code."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def lookupByName(self, name: str) -> Any:
        self.calls += 1
        if self.calls == 1:
            libvirt.virResetLastError()
            raise libvirt.libvirtError("virDomainLookupByName() failed")
        return self.real.lookupByName(name)


def test_lookup_asks_again_when_libvirt_lost_its_error(libvirt_conn: LibvirtConnection) -> None:
    """Seen in the full unit run (issue 13): a missing domain surfaced as 'look up X:
    virDomainLookupByName() failed' instead of None, depending on when the GC ran."""
    flaky = _LosesTheFirstError(libvirt_conn.conn)
    libvirt_conn._conn = flaky
    try:
        assert libvirt_conn.lookup("vmrepair-absent") is None
    finally:
        libvirt_conn._conn = flaky.real
    assert flaky.calls == 2
