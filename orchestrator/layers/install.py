"""Install a layer's .debs in the build VM, offline, from a repository made of exactly those files.

apt is given a one-source configuration: ``file:`` of the directory the .debs were copied to, with a
``Packages`` index written on the orchestrator from the verified files. Plain local-file installs
(``apt-get install ./x.deb``) lose to the template's own lists (debootstrap's, naming the same versions
at http:// URIs apt then cannot fetch) or, with those hidden, fail inside apt's ordering ("Pathname to
install is not absolute"); a real repository is what apt handles best. ``trusted=yes`` is safe here:
every file was verified on the orchestrator (signed mirror index, or the target's package database)
and the repository lives and dies in the disposable build VM.

Services the packages would start are held back by a ``policy-rc.d`` during the install (apache2's
default site would fight the template's nginx for port 80); the import of the target's files then
starts them with the target's configuration.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from orchestrator import systemd
from orchestrator.errors import LayerError
from orchestrator.facts.model import Package
from orchestrator.facts.parse import parse_packages
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.layers.debname import deb_file_name
from orchestrator.layers.debs import DebFile
from orchestrator.transport.base import Transport

GUEST_DIR = "/var/cache/vmrepair-layer"
POLICY_RC = "/usr/sbin/policy-rc.d"
#: Fields the index itself sets; a control file that carries them (a crafted .deb) is refused.
INDEX_FIELDS = ("filename:", "size:", "sha256:", "md5sum:", "sha1:")
MAX_CONTROL = 256 * 1024


#: Run in the build VM just before its memory is saved: page cache dropped, then the free memory
#: written with zeros once (the kernel hands out zeroed pages; writing zeros keeps them so), so the saved
#: state holds what runs and not the install's leftovers: QEMU stores zero pages as a flag. Measured: a
#: 594 MB state and a restore 2.4 times slower than the template's without it.
ZERO_FREE_MEMORY = """
import mmap
avail = int(next(l.split()[1] for l in open('/proc/meminfo') if l.startswith('MemAvailable:'))) * 1024
n = max(0, avail - 128 * 2**20) // 2**20 * 2**20
if n:
    m = mmap.mmap(-1, n)
    zeros = bytes(2**20)
    for off in range(0, n, 2**20):
        m[off:off + 2**20] = zeros
    m.close()
"""


def deb_name(package: Package) -> str:
    """Debian's pool file name (an epoch's ``:`` is written ``%3a``).

    Raises:
        LayerError: the package is outside Debian's syntax (the fetch refuses those before this).
    """
    name = deb_file_name(package)
    if name is None:
        raise LayerError(f"{package.spec}: not a Debian package name, version or architecture",
                         step="install")
    return name


def apt_options() -> list[str]:
    return ["-o", f"Dir::Etc::SourceList={GUEST_DIR}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={GUEST_DIR}/lists", "-o", "APT::Get::List-Cleanup=false"]


def index_stanza(control: str, deb: DebFile) -> str:
    """One ``Packages`` stanza: the .deb's control fields plus where the file is and its digest.

    Raises:
        LayerError: the control text would break out of its stanza or set the index's own fields.
    """
    lines = control.rstrip("\n").split("\n")
    if len(control) > MAX_CONTROL or any(not line.strip() for line in lines) \
            or any(line.lower().startswith(INDEX_FIELDS) for line in lines):
        raise LayerError(f"{deb.package.spec}: the .deb's control file is malformed or sets index fields",
                         step="install")
    size = deb.path.stat().st_size
    return "\n".join([*lines, f"Filename: ./{deb_name(deb.package)}", f"Size: {size}",
                      f"SHA256: {deb.sha256}"]) + "\n\n"


def repository_index(local: Transport, files: Sequence[DebFile]) -> bytes:
    stanzas = []
    for deb in files:
        control = local.check(["dpkg-deb", "-f", "--", str(deb.path)], timeout=60).stdout_text
        stanzas.append(index_stanza(control, deb))
    return "".join(stanzas).encode()


def _repository_tar(path: Path, files: Sequence[DebFile], index: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for deb in files:
            tar.add(deb.path, arcname=deb_name(deb.package), recursive=False)
        source = f"deb [trusted=yes] file:{GUEST_DIR} ./\n".encode()
        for name, data in (("Packages", index), ("sources.list", source)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def install(vm: Transport, local: Transport, files: Sequence[DebFile], *, timeout: float,
            timings: dict[str, float] | None = None) -> None:
    """Copy the .debs into the build VM and install exactly those versions, check every one, and leave
    the VM ready to be frozen (caches dropped, free memory zeroed).

    Raises:
        LayerError: apt refused or a package did not end installed at the wanted version.
    """
    clock = _Clock(timings if timings is not None else {})
    vm.check(["mkdir", "-p", "--", f"{GUEST_DIR}/lists/partial"], timeout=30)
    # One archive, one transfer: 38 files one by one took 14 s against a TCG guest.
    bundle = files[0].path.parent / "repository.tar" if files else None
    if bundle is not None:
        _repository_tar(bundle, files, repository_index(local, files))
        vm.put_file(bundle, f"{GUEST_DIR}/repository.tar", mode=0o600)
        bundle.unlink()
        vm.check(["tar", "-x", "--no-same-owner", "-f", f"{GUEST_DIR}/repository.tar", "-C", GUEST_DIR],
                 timeout=300)
    # exit 101 = "action forbidden": invoke-rc.d and deb-systemd-invoke start nothing during the install.
    _put_text(vm, POLICY_RC, b"#!/bin/sh\nexit 101\n", mode=0o755)
    clock.lap("push")
    try:
        update = vm.run(["apt-get", "update", "-q", *apt_options()], timeout=120, max_output=256 * 1024)
        _raise_unless(update.succeeded, "apt-get update of the local repository", update.exit_status,
                      update.stderr_text or update.stdout_text)
        wanted = [f"{d.package.name}={d.package.version}" if d.package.arch == "all"
                  else f"{d.package.name}:{d.package.arch}={d.package.version}" for d in files]
        result = vm.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                         "--allow-downgrades", "--no-install-recommends", *apt_options(),
                         "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                         # No fsync per unpacked file (the slowest part under TCG): the VM syncs once
                         # before it is frozen, and a build that dies is thrown away.
                         "-o", "Dpkg::Options::=--force-unsafe-io",
                         "--", *wanted], timeout=timeout, max_output=1024 * 1024)
        _raise_unless(result.succeeded, "installing the layer's packages", result.exit_status,
                      result.stderr_text.strip() or result.stdout_text)
    finally:
        vm.run(["rm", "-rf", "--", GUEST_DIR, POLICY_RC], timeout=60)
    clock.lap("apt")
    _verify(vm, files)
    systemd.daemon_reload(vm, timeout=120).raise_for_timeout(vm.host)
    # Free the page cache, then compact: QEMU backs guest RAM with 2 MiB host pages, so a restore costs
    # one host page per 2 MiB region holding any data. Measured on this machine: without compaction the
    # layer's 208 MiB of data spread over 460 MiB of host pages and the restore took twice the template's.
    vm.run(["sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"
            " && { [ ! -w /proc/sys/vm/compact_memory ] || echo 1 > /proc/sys/vm/compact_memory; }"],
           timeout=120)
    vm.run(["python3", "-c", ZERO_FREE_MEMORY], timeout=300)   # an optimization: a failure costs speed only
    clock.lap("settle")


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self.last, 2)
        self.last = now


def _verify(vm: Transport, files: Sequence[DebFile]) -> None:
    names = sorted({d.package.name for d in files})
    answer = vm.run(["dpkg-query", "-W", "-f", PACKAGE_FORMAT, "--", *names], timeout=60)
    got = {p.name: p for p in parse_packages(answer.stdout_text).items}
    wrong = [f"{d.package.spec} (VM: {got[d.package.name].version if d.package.name in got else 'absent'})"
             for d in files if d.package.name not in got or got[d.package.name].version != d.package.version
             or not got[d.package.name].is_installed]
    if wrong:
        raise LayerError("after the install these packages are not at the target's version: "
                         + ", ".join(wrong), step="verify")


def _raise_unless(ok: bool, what: str, status: int, output: str) -> None:
    if not ok:
        tail = " | ".join(output.strip().splitlines()[-6:])
        raise LayerError(f"{what} failed (apt-get exit {status}): {tail}", step="install",
                         remedy="the package set does not install over the template; the run continues "
                                "on the template")


def _put_text(vm: Transport, path: str, data: bytes, *, mode: int = 0o644) -> None:
    # The path and mode travel as "$1" and "$2": no shell parses them.
    result = vm.run(["sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh", path, f"{mode:o}"], stdin=data,
                    timeout=30)
    if not result.succeeded:
        raise LayerError(f"cannot write {path} in the build VM: {result.stderr_text.strip()[:200]}",
                         step="install")
