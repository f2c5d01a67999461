"""Parsers for what a target says about itself. Pure and total: they never raise, whatever the text.

Everything here is untrusted: a compromised or broken target may print anything. A line that does not
have the expected shape, or a name, version or path outside the syntax Debian allows, is dropped and
counted (the caller turns the count into a note), never passed on. Counts are capped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from orchestrator.facts.model import AptSource, OsRelease, Package, UnitFile

#: Debian policy 5.6.1 (names) and 5.6.12 (versions); architectures as dpkg-architecture names them.
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")
VERSION = re.compile(r"^(?:[0-9]{1,10}:)?[0-9A-Za-z][0-9A-Za-z.+~-]{0,127}$")
ARCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
UNIT = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,255}\."
                  r"(service|socket|timer|path|mount|automount|target|swap|slice|scope)$")
_STATE = re.compile(r"^[a-z-]{1,32}$")
_OS_WORD = re.compile(r"^[a-z0-9._-]{1,64}$")
_URI = re.compile(r"^(https?|file|cdrom|copy|mirror\+https?|tor\+https?)://?[!-~]{1,1024}$")
_SUITE = re.compile(r"^[A-Za-z0-9._/-]{1,128}$")
#: ``${db:Status-Abbrev}`` without its trailing space: want, status and (optional) error flag.
DPKG_STATUS = re.compile(r"^[uihrp][ncHUFWti][ R]?$")

MAX_PACKAGES = 50_000
MAX_UNITS = 20_000
MAX_SOURCES = 256
MAX_TEXT = 256


T = TypeVar("T")


@dataclass
class Parsed(Generic[T]):
    items: list[T] = field(default_factory=list)
    rejected: int = 0
    truncated: bool = False


def _clean_text(value: str) -> str:
    return "".join(ch for ch in value if ch.isprintable())[:MAX_TEXT]


def parse_os_release(text: str) -> OsRelease | None:
    """``/etc/os-release`` (``KEY=value``, values optionally quoted); None without a valid ``ID``."""
    values: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_]{1,32}", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    os_id = values.get("ID", "").lower()
    if not _OS_WORD.match(os_id):
        return None
    version = values.get("VERSION_ID", "")
    codename = values.get("VERSION_CODENAME", "")
    return OsRelease(
        id=os_id,
        version_id=version if _OS_WORD.match(version) else "",
        codename=codename if _OS_WORD.match(codename) else "",
        pretty_name=_clean_text(values.get("PRETTY_NAME", "")),
    )


def parse_packages(text: str) -> Parsed[Package]:
    """``dpkg-query -W -f FORMAT`` with FORMAT = package, version, architecture, status abbreviation and
    status, tab-separated (``read.PACKAGE_FORMAT``).

    Packages dpkg only remembers (``un``, ``rc``: not installed, config files left) are skipped.
    """
    out: Parsed[Package] = Parsed()
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 5:
            out.rejected += 1
            continue
        name, version, arch, abbrev, status = fields
        name = name.split(":", 1)[0]
        abbrev = abbrev.strip()
        if abbrev[:2] in ("un", "rc", "pn", "pc") or abbrev.startswith("un"):
            continue
        if not (PACKAGE_NAME.match(name) and VERSION.match(version) and ARCH.match(arch)
                and DPKG_STATUS.match(abbrev)):
            out.rejected += 1
            continue
        if len(out.items) >= MAX_PACKAGES:
            out.truncated = True
            break
        out.items.append(Package(name, version, arch, abbrev[:2], held=status.split(" ", 1)[0] == "hold"))
    return out


def parse_sources_list(text: str, file: str) -> Parsed[AptSource]:
    """One-line style (``deb [opts] URI SUITE [COMPONENT...]``)."""
    out: Parsed[AptSource] = Parsed()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line, count=1)  # options are not part of the identity
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            out.rejected += 1
            continue
        _add_source(out, words[0], words[1], words[2], components=words[3:], file=file)
    return out


def parse_deb822_sources(text: str, file: str) -> Parsed[AptSource]:
    """deb822 style (``Types:``, ``URIs:``, ``Suites:``, ``Components:``, ``Enabled:``)."""
    out: Parsed[AptSource] = Parsed()
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1].isspace():
                if key in fields:
                    fields[key] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            key = name.strip().lower() if sep else ""
            if sep:
                fields[key] = value.strip()
        if not fields:
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        types, uris, suites = (fields.get(k, "").split() for k in ("types", "uris", "suites"))
        if not (types and uris and suites):
            out.rejected += 1
            continue
        for kind in types:
            for uri in uris:
                for suite in suites:
                    _add_source(out, kind, uri, suite, components=fields.get("components", "").split(),
                                file=file)
    return out


def _add_source(out: Parsed[AptSource], kind: str, uri: str, suite: str, *, components: list[str],
                file: str) -> None:
    ok = (kind in ("deb", "deb-src") and _URI.match(uri) and _SUITE.match(suite)
          and all(_SUITE.match(c) for c in components) and len(components) <= 32)
    if not ok:
        out.rejected += 1
        return
    if len(out.items) >= MAX_SOURCES:
        out.truncated = True
        return
    out.items.append(AptSource(kind, uri, suite, tuple(components), file))


_EXEC_PATH = re.compile(r"(?:^|[{;]\s*)path=(/[^ ;]{1,4096})")


def exec_paths(value: str) -> list[str]:
    """The programs of a ``systemctl show`` ``Exec*=`` value (``{ path=/usr/sbin/nginx ; argv[]=... }``,
    one brace group per command)."""
    return [m.group(1) for m in _EXEC_PATH.finditer(value) if is_plain_path(m.group(1))]


def directory_path(value: str) -> str | None:
    """``WorkingDirectory=``/``RootDirectory=`` as shown: ``!``/``-`` prefixes dropped, ``~`` is no path."""
    path = value.lstrip("!-")
    return path if path.startswith("/") and is_plain_path(path) else None


def environment_file_paths(value: str) -> list[str]:
    """``EnvironmentFiles=/etc/default/x (ignore_errors=yes)``: one file per line of the value."""
    paths = []
    for part in re.split(r"\s*\(ignore_errors=(?:yes|no)\)\s*", value):
        path = part.strip().lstrip("-")
        if path.startswith("/") and is_plain_path(path):
            paths.append(path)
    return paths


def is_plain_path(path: str) -> bool:
    """Absolute, printable, no ``..`` component, no whitespace: safe to pass as one argv element."""
    return (path.startswith("/") and len(path) <= 4096 and path.isprintable()
            and not any(ch.isspace() for ch in path) and ".." not in path.split("/"))


def parse_dpkg_search(stdout: str) -> dict[str, str]:
    """``dpkg-query -S PATH...``: ``pkg[, pkg...]: /path`` per owned path → {path: packages}.
    Diversion lines (``diversion by X from: /p``) are not ownership."""
    owned: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith(("diversion by", "local diversion")):
            continue
        owners, sep, path = line.rpartition(": ")
        if sep and is_plain_path(path) and owners and all(PACKAGE_NAME.match(o.strip().split(":")[0])
                                                          for o in owners.split(",")):
            owned[path] = owners
    return owned


def unit_states_from_tree(entries: Iterable[tuple[str, str, str | None]],
                          roots: Sequence[str]) -> Parsed[UnitFile]:
    """Masked and enabled units from the symlinks systemd keeps for them, as (path, type, link) under
    ``roots`` (``/etc/systemd/system``, ``/run/systemd/system``): ``UNIT -> /dev/null`` is masked, a link in
    ``*.wants/`` or ``*.requires/`` enables UNIT. ``systemctl list-unit-files`` answers the same and
    more, but takes 5 s in a TCG guest; other states (static, disabled ...) are not recorded here."""
    out: Parsed[UnitFile] = Parsed()
    states: dict[str, str] = {}
    for path, kind, link in entries:
        root = next((r for r in roots if path.startswith(r + "/")), None)
        if root is None or kind != "symlink":
            continue
        parts = path[len(root) + 1:].split("/")
        name = parts[-1]
        if not UNIT.match(name):
            out.rejected += 1
            continue
        if len(parts) == 1 and link == "/dev/null":
            states[name] = "masked"
        elif len(parts) == 2 and parts[0].endswith((".wants", ".requires")):
            states.setdefault(name, "enabled")
    for name in sorted(states)[:MAX_UNITS]:
        out.items.append(UnitFile(name, states[name]))
    out.truncated = len(states) > MAX_UNITS
    return out
