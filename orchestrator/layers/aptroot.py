"""A private apt on the orchestrator that finds and downloads exact package versions from a mirror.

Its state, cache, sources and preferences live under ``cache_dir/apt-SUITE-ARCH/``: the host's package
database, sources and pins play no part, and the host's apt is left as it was. Two things of the host
stay on purpose: its trusted keys (``/etc/apt/trusted.gpg.d``), so the mirror's signed Release files
are verified exactly as for the host's own updates and apt checks every .deb against the signed index;
and its ``apt.conf.d`` (proxies, network settings). The host's update hooks are cleared: they act on the
host's apt (appstream, command-not-found, "docker-clean" deleting the host's cache).

Every command is an argv; the mirror and suite strings are checked (:func:`check_suite`,
:func:`check_mirror`) before they reach a file, and package specs come from validated packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import CommandTimeoutError, LayerError, TransportError
from orchestrator.facts.parse import ARCH, VERSION
from orchestrator.fsutil import atomic_write, ensure_private_dir, state_os_error
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.output import cap_output

STEP = "fetch-mirror"
SUITE = re.compile(r"[a-z][a-z0-9-]{1,30}")
#: Printable ASCII without blanks: one word of a sources.list line, nothing apt could read as options.
MIRROR_URL = re.compile(r"(https?|file)://[!-~]+")
#: Lists younger than this are reused; a wanted version they lack triggers one fresh update anyway.
LISTS_MAX_AGE_S = 6 * 3600
#: Suites that have no -updates and -security archives.
_ROLLING_SUITES = frozenset({"sid", "unstable", "experimental"})
_MAX_APT_OUTPUT = 4 * 1024 * 1024
_PRINT_URI = re.compile(r"'(?P<uri>.+)' (?P<file>[^\s']+) (?P<size>[0-9]{1,15}) (?P<algo>SHA256|SHA512):"
                        r"(?P<digest>[0-9a-f]{64,128})")
_MIRROR_REMEDY = ("check layers.mirror and layers.security_mirror in /etc/vmrepair/config.yaml, that this "
                  "machine reaches them (network, proxy in /etc/apt/apt.conf.d) and that the host's apt "
                  "keys (/etc/apt/trusted.gpg.d) trust the archive")
_CONF = """\
// Written by vmrepair for its private apt: the host's update hooks act on the host's apt, not this one.
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
APT::Architecture "{native}";
APT::Architectures {{ {archs} }};
Acquire::Languages "none";
"""


@dataclass(frozen=True)
class IndexEntry:
    """One .deb as the signed index describes it (``apt-get download --print-uris``)."""

    file_name: str
    size: int
    algorithm: str   # hashlib name: sha256 or sha512
    digest: str


def check_suite(suite: str) -> str:
    """Raises: LayerError: ``suite`` is not a plain Debian suite name (``bookworm``, ``trixie``)."""
    if not SUITE.fullmatch(suite):
        raise LayerError(f"{cap_output(repr(suite), 100)} is not a Debian suite name", step=STEP,
                         remedy="pass the target's codename as the suite (e.g. bookworm)")
    return suite


def check_mirror(url: str, key: str) -> str:
    """Raises: LayerError: ``url`` is not an http(s):// or file:// URL of printable ASCII."""
    if not MIRROR_URL.fullmatch(url):
        raise LayerError(f"{key} {cap_output(repr(url), 200)} is not an http://, https:// or file:// URL",
                         step=STEP, remedy=f"set {key} in /etc/vmrepair/config.yaml to a Debian mirror URL, "
                                           "e.g. http://deb.debian.org/debian")
    return url


class AptRoot:
    """The private apt of one suite and native architecture, under ``cache_dir/apt-SUITE-ARCH/``."""

    def __init__(self, path: Path, *, mirror: str, suite: str) -> None:
        self.path = path
        self.mirror = mirror
        self.suite = suite

    @classmethod
    def prepare(cls, cache_dir: Path, *, mirror: str, security_mirror: str, suite: str, arch: str,
                foreign_archs: Sequence[str] = (), allow_unsigned: bool = False) -> AptRoot:
        """Check the strings and (re)write the sources and configuration of the private apt.

        Raises:
            LayerError: an invalid suite or mirror URL.
            StateError: the directory cannot be written.
        """
        suite = check_suite(suite)
        if not all(ARCH.fullmatch(a) for a in (arch, *foreign_archs)):
            raise LayerError(f"{cap_output(repr([arch, *foreign_archs]), 200)}: not Debian architecture "
                             "names", step=STEP)
        mirror = check_mirror(mirror, "layers.mirror")
        security_mirror = check_mirror(security_mirror, "layers.security_mirror")
        root = cls(cache_dir / f"apt-{suite}-{arch}", mirror=mirror, suite=suite)
        for directory in (root.path, root.lists, root.lists / "partial", root.cache / "archives" / "partial",
                          root.empty):
            ensure_private_dir(directory)
        archs = [arch, *sorted(set(foreign_archs) - {arch, "all"})]
        # trusted=yes would switch off the Release signature check; only tests of file:// repositories
        # may ask for it, and nothing in the configuration reaches this flag.
        options = f"[arch={','.join(archs)} target=Packages{' trusted=yes' if allow_unsigned else ''}]"
        lines = [f"deb {options} {mirror} {suite} main"]
        if suite not in _ROLLING_SUITES:
            lines += [f"deb {options} {mirror} {suite}-updates main",
                      f"deb {options} {security_mirror} {suite}-security main"]
        conf = _CONF.format(native=arch, archs=" ".join(f'"{a}";' for a in archs))
        atomic_write(root.sources_list, ("\n".join(lines) + "\n").encode())
        atomic_write(root.conf, conf.encode())
        if not root.status.exists():
            atomic_write(root.status, b"")  # no installed packages: nothing of the host's dpkg counts
        return root

    @property
    def lists(self) -> Path:
        return self.path / "lists"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def empty(self) -> Path:
        """An empty directory: sources.list.d and preferences.d of the private apt, and the working
        directory of ``--print-uris`` (apt leaves out files already present in its working directory)."""
        return self.path / "empty"

    @property
    def sources_list(self) -> Path:
        return self.path / "sources.list"

    @property
    def conf(self) -> Path:
        return self.path / "apt.conf"

    @property
    def status(self) -> Path:
        return self.path / "status"

    @property
    def stamp(self) -> Path:
        return self.path / "updated"

    def options(self) -> list[str]:
        """apt options: the configuration file first (it clears hooks read from the host's), then the
        directories, given as -o so no path needs quoting in apt's configuration syntax."""
        dirs = {"Dir::State": self.path, "Dir::State::lists": self.lists, "Dir::State::status": self.status,
                "Dir::Cache": self.cache, "Dir::Cache::archives": self.cache / "archives",
                "Dir::Cache::pkgcache": self.cache / "pkgcache.bin",
                "Dir::Cache::srcpkgcache": self.cache / "srcpkgcache.bin",
                "Dir::Etc::SourceList": self.sources_list, "Dir::Etc::SourceParts": self.empty,
                "Dir::Etc::Preferences": self.empty / "preferences", "Dir::Etc::PreferencesParts": self.empty}
        return ["-c", str(self.conf), *(arg for key, path in dirs.items() for arg in ("-o", f"{key}={path}"))]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialize users of this root (two layer builds of the same suite): the lists, stamp and cache
        are shared. Blocks; every apt command of the holder has a deadline."""
        try:
            handle = (self.path / "lock").open("a")
        except OSError as exc:
            raise state_os_error(f"cannot open {self.path / 'lock'}", exc, directory=self.path) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def is_fresh(self) -> bool:
        """The lists were updated less than :data:`LISTS_MAX_AGE_S` ago from the same sources."""
        try:
            stamp = self.stamp.stat()
            recorded = self.stamp.read_text()
        except OSError:
            return False
        age = time.time() - stamp.st_mtime
        # A stamp from the future (clock set back) proves nothing about the lists' age.
        return recorded == self._sources_digest() and -300 <= age < LISTS_MAX_AGE_S

    def update(self, local: Transport, *, timeout: float) -> None:
        """``apt-get update`` of the private lists; records the time in the stamp file.

        Raises:
            LayerError: apt failed (unreachable mirror, unsigned or badly signed Release, missing suite).
            StateError: the stamp cannot be written.
        """
        self.stamp.unlink(missing_ok=True)
        # --error-on=any: a failed index is an error, not a warning over lists that are silently old.
        result = self._apt(local, ["apt-get", *self.options(), "-q", "--error-on=any", "update"],
                           timeout=timeout, what="apt-get update")
        if not result.succeeded:
            raise LayerError(f"apt-get update from {self.mirror} (suite {self.suite}) failed: "
                             f"{apt_errors(result)}", step=STEP, remedy=_MIRROR_REMEDY)
        atomic_write(self.stamp, self._sources_digest().encode())

    def locate(self, local: Transport, specs: Sequence[str], *, timeout: float) -> tuple[
            dict[str, IndexEntry], str]:
        """What the index says about each spec apt can find, by file name, and apt's complaints about
        the others (a version it does not know exits non-zero but still prints the ones it knows).

        Raises:
            LayerError: apt cannot be run.
        """
        result = self._apt(local, ["env", "-C", str(self.empty), "apt-get", *self.options(), "-q",
                                   "download", "--print-uris", *specs], timeout=timeout,
                           what="apt-get download --print-uris")
        entries: dict[str, IndexEntry] = {}
        for line in result.stdout_text.splitlines():
            match = _PRINT_URI.fullmatch(line.strip())
            if match:
                entries[match["file"]] = IndexEntry(match["file"], int(match["size"]), match["algo"].lower(),
                                                    match["digest"])
        return entries, "" if result.succeeded else apt_errors(result)

    def download(self, local: Transport, specs: Sequence[str], *, into: Path, timeout: float) -> None:
        """``apt-get download`` into ``into``; apt checks every file against the signed index.

        Raises:
            LayerError: a download failed or did not match the index.
        """
        result = self._apt(local, ["env", "-C", str(into), "apt-get", *self.options(), "-q", "download",
                                   *specs], timeout=timeout, what="apt-get download")
        if not result.succeeded:
            raise LayerError(f"apt-get download from {self.mirror} failed: {apt_errors(result)}", step=STEP,
                             remedy=_MIRROR_REMEDY)

    def versions(self, local: Transport, names: Sequence[str], *, timeout: float) -> dict[str, list[str]]:
        """The versions of each package the mirror serves (one ``apt-cache madison``), for messages."""
        found: dict[str, list[str]] = {name: [] for name in names}
        try:
            result = self._apt(local, ["apt-cache", *self.options(), "madison", *names], timeout=timeout,
                               what="apt-cache madison")
        except LayerError:
            return found
        for line in result.stdout_text.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) == 3 and fields[0] in found and VERSION.fullmatch(fields[1]) \
                    and fields[1] not in found[fields[0]]:
                found[fields[0]].append(fields[1])
        return found

    def _apt(self, local: Transport, argv: list[str], *, timeout: float, what: str) -> CommandResult:
        try:
            return local.run(argv, timeout=timeout, max_output=_MAX_APT_OUTPUT)
        except CommandTimeoutError as exc:
            raise LayerError(f"{what} from {self.mirror} did not finish within {timeout:g} s", step=STEP,
                             remedy=_MIRROR_REMEDY) from exc
        except TransportError as exc:
            raise LayerError(f"cannot run {what} on this machine: {exc}", step=STEP,
                             remedy="install apt and coreutils on the orchestrator") from exc

    def _sources_digest(self) -> str:
        try:
            return hashlib.sha256(self.sources_list.read_bytes() + self.conf.read_bytes()).hexdigest()
        except OSError:
            return ""


def apt_errors(result: CommandResult) -> str:
    """apt's ``E:`` lines (its reasons), else the tail of its output, capped for a message."""
    lines = result.stderr_text.splitlines() + result.stdout_text.splitlines()
    errors = [line for line in lines if line.startswith("E:")] or lines[-3:] or [f"exit {result.exit_status}"]
    return cap_output(" | ".join(errors[:5]), 1000)
