"""dpkg on a host (the troubleshooting VM or the target): argv builders and parsers of what it answers.

The one place that knows dpkg's command lines and output formats, used by the package step kinds
(:mod:`orchestrator.steps.kinds.reinstall_package`, ``dpkg_configure``) in the VM and by the package
operations of apply (:mod:`orchestrator.apply.pkg_ops`) on the target, so both run exactly the same
commands.

Every package name is checked against :data:`PACKAGE_NAME` (Debian policy 5.6.1: at least two
characters, lowercase letters, digits, ``+ - .``, starting with a letter or digit) before it reaches an
argv: it can then be neither an option (no leading ``-``) nor a shell word (no shell is ever used).
Parsers are total: a host may print anything, and lines of the wrong shape are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.errors import CommandFailedError
from orchestrator.facts.parse import ARCH, DPKG_STATUS, VERSION
from orchestrator.transport.base import Transport

#: Debian policy 5.6.1; ``fullmatch`` only (``$`` would accept a trailing newline).
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}")
#: The word a playbook and an operation use for "every package dpkg left unconfigured" (``-a``). No
#: package is called that; it is never handed to dpkg as a name.
ALL_PACKAGES = "all"

#: Services are held back while a package is reinstalled: invoke-rc.d and deb-systemd-invoke ask this
#: script first, and 101 means "action forbidden". The restart the fix needs is an explicit, replayed
#: ``unit`` step, in the VM and on the target alike.
POLICY_RC = "/usr/sbin/policy-rc.d"
#: The line that marks a policy-rc.d as ours: only a file carrying it is ever removed (recovery removes
#: one a crash left behind; a policy-rc.d the host had is never touched).
POLICY_RC_MARK = "# vmrepair: services held back during a package operation"
POLICY_RC_SCRIPT = f"#!/bin/sh\n{POLICY_RC_MARK}\nexit 101\n".encode()

#: ``${db:Status-Abbrev}`` status letters (the second character).
NOT_INSTALLED, CONFIG_FILES, HALF_INSTALLED = "n", "c", "H"
UNPACKED, HALF_CONFIGURED, TRIGGERS_AWAITED, TRIGGERS_PENDING, INSTALLED = "U", "F", "W", "t", "i"
#: States ``dpkg --configure`` moves on to ``installed``.
CONFIGURABLE = frozenset({UNPACKED, HALF_CONFIGURED, TRIGGERS_AWAITED, TRIGGERS_PENDING})
#: States in which the package's files are (at least partly) on disk at a known version: a reinstall
#: of that version is meaningful.
PRESENT = CONFIGURABLE | {INSTALLED, HALF_INSTALLED}

STATUS_FORMAT = "${binary:Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n"
_NONINTERACTIVE = ("env", "DEBIAN_FRONTEND=noninteractive")


def is_package_name(name: str) -> bool:
    return bool(PACKAGE_NAME.fullmatch(name))


def is_version(version: str) -> bool:
    return bool(VERSION.fullmatch(version)) and "\n" not in version


def is_arch(arch: str) -> bool:
    return bool(ARCH.fullmatch(arch)) and "\n" not in arch


def spec(name: str, arch: str) -> str:
    """``name:arch`` as dpkg selects one instance of a multi-arch package; ``all`` packages by name."""
    return name if arch == "all" else f"{name}:{arch}"


@dataclass(frozen=True)
class PackageStatus:
    name: str
    arch: str
    version: str
    #: ``${db:Status-Abbrev}`` without trailing blanks: want, status, error flag (``ii``, ``iF``, ``iHR``).
    abbrev: str

    @property
    def state(self) -> str:
        return self.abbrev[1]

    @property
    def is_reinst_required(self) -> bool:
        return self.abbrev[2:3] == "R"

    @property
    def is_installed_ok(self) -> bool:
        return self.state == INSTALLED and not self.is_reinst_required

    @property
    def needs_configure(self) -> bool:
        return self.state in CONFIGURABLE

    @property
    def is_present(self) -> bool:
        return self.state in PRESENT


def status_argv(name: str) -> list[str]:
    """Every instance (architecture) of ``name``; exit 1 (and nothing on stdout) when dpkg never heard
    of it."""
    return ["dpkg-query", "-W", "-f", STATUS_FORMAT, "--", name]


def parse_status(text: str, name: str) -> list[PackageStatus]:
    """The lines of :func:`status_argv` about ``name``, well-formed ones only."""
    found = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        package, arch, version, abbrev = parts[0].split(":")[0], parts[1], parts[2], parts[3].rstrip()
        if package == name and is_arch(arch) and is_version(version) and DPKG_STATUS.match(abbrev):
            found.append(PackageStatus(package, arch, version, abbrev))
    return found


def configure_argv(name: str) -> list[str]:
    """``dpkg --configure NAME`` (or ``-a`` for :data:`ALL_PACKAGES`), without questions."""
    return [*_NONINTERACTIVE, "dpkg", "--configure", "-a" if name == ALL_PACKAGES else name]


def install_argv(deb_path: str) -> list[str]:
    """``dpkg -i`` keeping every modified conffile (``--force-confold``: the admin's version stays; a
    deleted conffile stays deleted, as dpkg always does without ``--force-confmiss``). The path is
    absolute, so it cannot be taken for an option."""
    return [*_NONINTERACTIVE, "dpkg", "--force-confold", "-i", deb_path]


def audit_argv() -> list[str]:
    """``dpkg --audit``: prints the packages left half-installed/unconfigured; nothing when all is well."""
    return ["dpkg", "--audit"]


def verify_argv(name: str, arch: str) -> list[str]:
    return ["dpkg", "--verify", spec(name, arch)]


@dataclass(frozen=True)
class VerifyFinding:
    """One line of ``dpkg --verify``: a file whose content differs from the package's md5sums, or that
    is missing."""

    path: str
    is_missing: bool
    is_conffile: bool


_VERIFY_LINE = re.compile(r"^(missing  |[?.0-9A-Za-z]{9}) ([c ]) (/.*)$")


def parse_verify(text: str) -> list[VerifyFinding]:
    """dpkg's ``--verify-format rpm`` lines (``??5?????? c /etc/x``, ``missing     /usr/bin/y``)."""
    found = []
    for line in text.splitlines():
        match = _VERIFY_LINE.match(line)
        if match is None or "\x00" in line:
            continue
        flags, attr, path = match.groups()
        found.append(VerifyFinding(path, flags.startswith("missing"), attr == "c"))
    return found


@dataclass(frozen=True)
class PackagedFiles:
    """What an installed package owns, as its host's dpkg says: every path, and the conffiles among
    them."""

    files: frozenset[str]
    conffiles: frozenset[str]


def files_argv(name: str, arch: str) -> list[str]:
    """Every path the installed package owns (directories included), one per line."""
    return ["dpkg-query", "-L", "--", spec(name, arch)]


def conffiles_argv(name: str, arch: str) -> list[str]:
    return ["dpkg-query", "-W", "-f", "${Conffiles}\n", "--", spec(name, arch)]


def parse_paths(text: str) -> frozenset[str]:
    """Absolute paths, one per line (``dpkg-query -L``); anything else (diversion notes) dropped."""
    return frozenset(line for line in text.splitlines() if line.startswith("/") and "\x00" not in line)


def parse_conffiles(text: str) -> frozenset[str]:
    """``${Conffiles}``: `` /etc/x 0123abcd...`` per conffile (``obsolete``/``remove-on-upgrade`` may
    follow)."""
    return frozenset(parts[0] for line in text.splitlines()
                     if (parts := line.split()) and parts[0].startswith("/"))


def packaged_files(transport: Transport, name: str, arch: str, *, timeout: float = 60.0) -> PackagedFiles:
    """What ``name:arch`` owns on the host of ``transport``, as its dpkg says.

    Raises:
        CommandFailedError: dpkg-query does not know the package. TransportError: it could not run.
    """
    listed = transport.run(files_argv(name, arch), timeout=timeout, max_output=16 * 1024 * 1024)
    if listed.exit_status != 0 or listed.is_truncated:
        raise CommandFailedError(f"{transport.host}: dpkg-query -L {spec(name, arch)} exited "
                                 f"{listed.exit_status}", host=transport.host,
                                 exit_status=listed.exit_status, stderr=listed.stderr_text)
    conffiles = transport.run(conffiles_argv(name, arch), timeout=timeout)
    return PackagedFiles(parse_paths(listed.stdout_text), parse_conffiles(conffiles.stdout_text))


def hold_services_argv() -> list[str]:
    """Create :data:`POLICY_RC` from stdin unless something is there already (``set -C``: never
    overwrites a policy the host has); the path travels as ``$1``."""
    return ["sh", "-c", 'set -C && cat > "$1" && chmod 0755 "$1"', "sh", POLICY_RC]


def release_services_argv() -> list[str]:
    """Remove :data:`POLICY_RC` only if it is ours (carries :data:`POLICY_RC_MARK`); exit 0 either way."""
    return ["sh", "-c", 'if grep -qxF -- "$2" "$1" 2>/dev/null; then rm -f -- "$1"; fi', "sh", POLICY_RC,
            POLICY_RC_MARK]


def is_lock_error(output: str) -> bool:
    """dpkg's answer when another dpkg (or apt) holds its lock."""
    return "lock" in output and ("locked by another process" in output or "unable to acquire" in output
                                 or "is locked" in output)
