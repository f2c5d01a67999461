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

from collections.abc import Sequence

from orchestrator.errors import LayerError
from orchestrator.facts.model import Package
from orchestrator.facts.parse import parse_packages
from orchestrator.facts.read import PACKAGE_FORMAT
from orchestrator.layers.debs import DebFile
from orchestrator.transport.base import Transport

GUEST_DIR = "/var/cache/vmrepair-layer"
POLICY_RC = "/usr/sbin/policy-rc.d"
#: Fields the index itself sets; a control file that carries them (a crafted .deb) is refused.
INDEX_FIELDS = ("filename:", "size:", "sha256:", "md5sum:", "sha1:")
MAX_CONTROL = 256 * 1024


def deb_name(package: Package) -> str:
    """Debian's pool file name (an epoch's ``:`` is written ``%3a``)."""
    return f"{package.name}_{package.version.replace(':', '%3a')}_{package.arch}.deb"


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


def install(vm: Transport, local: Transport, files: Sequence[DebFile], *, timeout: float) -> None:
    """Copy the .debs into the build VM and install exactly those versions, then check every one.

    Raises:
        LayerError: apt refused or a package did not end installed at the wanted version.
    """
    vm.check(["mkdir", "-p", "--", f"{GUEST_DIR}/lists/partial"], timeout=30)
    for deb in files:
        vm.put_file(deb.path, f"{GUEST_DIR}/{deb_name(deb.package)}", mode=0o644)
    _put_text(vm, f"{GUEST_DIR}/Packages", repository_index(local, files))
    _put_text(vm, f"{GUEST_DIR}/sources.list", f"deb [trusted=yes] file:{GUEST_DIR} ./\n".encode())
    # exit 101 = "action forbidden": invoke-rc.d and deb-systemd-invoke start nothing during the install.
    _put_text(vm, POLICY_RC, b"#!/bin/sh\nexit 101\n", mode=0o755)
    try:
        update = vm.run(["apt-get", "update", "-q", *apt_options()], timeout=120, max_output=256 * 1024)
        _raise_unless(update.succeeded, "apt-get update of the local repository", update.exit_status,
                      update.stderr_text or update.stdout_text)
        wanted = [f"{d.package.name}={d.package.version}" if d.package.arch == "all"
                  else f"{d.package.name}:{d.package.arch}={d.package.version}" for d in files]
        result = vm.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                         "--allow-downgrades", "--no-install-recommends", *apt_options(),
                         "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                         "--", *wanted], timeout=timeout, max_output=1024 * 1024)
        _raise_unless(result.succeeded, "installing the layer's packages", result.exit_status,
                      result.stderr_text.strip() or result.stdout_text)
    finally:
        vm.run(["rm", "-rf", "--", GUEST_DIR, POLICY_RC], timeout=60)
    _verify(vm, files)
    vm.check(["systemctl", "daemon-reload"], timeout=120)


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
