"""Fault signatures: what a fault *is*, stable across hosts and free of what identifies one.

A :class:`FaultSignature` has five parts, read from the objects the pipeline already has:

- component kind: the component's first package, else its first unit, else its name (never a host
  name; a template unit's instance is dropped: ``getty@tty1.service`` -> ``getty@<i>.service``);
- issue kind (``config_invalid`` ...), and the diagnosed cause;
- the evidence pattern: the issue's subject and evidence with everything host-specific abstracted
  (:func:`normalise_evidence`);
- the OS release (``debian-12``).

Three levels group faults from fine to coarse, so that ranking can fall back to a coarser one when a
fine one has no data yet (:mod:`orchestrator.fleet.posterior`)::

    fine   = (component kind, issue kind, cause, evidence pattern, os release)
    medium = (component kind, issue kind, cause)
    coarse = (issue kind, cause)

Each level is named by a short id: the first 16 hex digits of the sha256 of its canonical JSON (the
level's name and parts, sorted keys, ASCII), so the same fault gets the same ids on every host and in
every release that keeps these rules. Everything here is pure: no I/O, no clock.

Evidence normalisation, in one left-to-right pass (a replaced token is never rescanned):

=====================  ==================================  =================================
what                   example                             becomes
=====================  ==================================  =================================
URL                    ``http://web1:8080/health``         ``<url>``
user@host              ``root@web1``, ``ops@example.com``  ``<user@host>``
unit instance          ``app@blue.service``                ``app@<i>.service``
IPv4 / IPv6            ``10.0.0.7:443`` / ``fe80::1``      ``<ip>``
absolute path          ``/etc/nginx/sites-enabled/site1``  ``/etc/<...>/<file>``
                       ``/etc/nginx/nginx.conf``           ``/etc/<...>/<file>.conf``
                       ``/srv/shop/app.py``                ``/srv/<...>/<file>.py``
                       ``/customer/x``                     ``/<dir>/<file>``
host name (dotted)     ``db.example.com``                  ``<host>``
hex id (with a digit)  ``3fa2c9e1d0``, ``0x1f``, a UUID   ``<hex>``
number                 ``12``, ``site1``                   ``<n>``, ``site<n>``
=====================  ==================================  =================================

Paths keep their top directory when it is a standard one (``etc``, ``var``, ...: it says which kind
of file broke) and the basename's extension (``.conf``, ``.service``: it says which format); every
other segment may name a site, a customer or a user, so it goes. A dotted word whose last label is a
known file or unit suffix (``nginx.conf``, ``app.service``) is a file name, not a host, and keeps its
shape. Host names the caller knows (the target's) are replaced wherever they appear as a word.
Within one evidence key, the distinct normalised lines are sorted, so a listing of 3 big files and
one of 5 give the same pattern; whitespace is collapsed and the whole pattern capped.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.diagnose.result import Diagnosis
from orchestrator.facts.model import OsRelease
from orchestrator.model import Component, Issue

#: Signature levels, finest first (the fallback order of ranking).
FINE, MEDIUM, COARSE = "fine", "medium", "coarse"
LEVELS: tuple[str, ...] = (FINE, MEDIUM, COARSE)
#: Hex digits of a signature id: 64 bits, far beyond the number of distinct faults a fleet sees.
ID_HEX_DIGITS = 16
#: Cap of the whole evidence pattern, and of one evidence value before normalising (bounds the work
#: spent on untrusted text; probes already cap their evidence far below this).
PATTERN_MAX = 512
VALUE_SCAN_MAX = 4096
#: Cap of a component kind (a package or unit name).
KIND_MAX = 64

#: Top-level directories that say what kind of file a path is, and name nobody.
STANDARD_TOP_DIRS = frozenset({
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "media", "mnt", "opt", "proc", "root",
    "run", "sbin", "snap", "srv", "sys", "tmp", "usr", "var"})
#: Last labels of dotted words that are file or unit names, never host names.
FILE_SUFFIXES = frozenset({
    "automount", "bak", "cfg", "cnf", "conf", "crt", "csr", "css", "csv", "d", "db", "deb", "device", "env",
    "gz", "htm", "html", "ini", "js", "json", "jsonl", "key", "list", "lock", "log", "mount", "old", "path",
    "pem", "php", "pid", "pl", "properties", "py", "rb", "rules", "scope", "service", "sh", "slice", "so",
    "sock", "socket", "sources", "sql", "swap", "target", "timer", "toml", "txt", "xml", "xz", "yaml",
    "yml", "zst"})

_URL = r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s\"'<>]+)"
_AT = r"(?P<at>(?<![\w.@-])[\w.+-]+@[\w.-]*[\w-])"
_IPV4 = r"(?P<ipv4>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?::\d{1,5})?(?![\w.]))"
_IPV6 = r"(?P<ipv6>(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:]))"
_PATH = r"(?P<path>(?<![\w.~<>/-])(?:/[\w.@+-]+)+/?)"
_HOST = r"(?P<host>(?<![\w.<>/-])(?:[A-Za-z0-9][A-Za-z0-9-]{0,62}\.)+[A-Za-z][A-Za-z0-9-]{0,62}(?![\w-]))"
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_HEX = (rf"(?P<hex>\b(?:{_UUID}|0[xX][0-9A-Fa-f]+|"
        r"(?=[0-9A-Fa-f]*[A-Fa-f])(?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]{6,})\b)")
_NUMBER = r"(?P<number>\d+)"
_TOKENS = re.compile("|".join((_URL, _AT, _IPV4, _IPV6, _PATH, _HOST, _HEX, _NUMBER)))
_NUMBERS_ONLY = re.compile("|".join((_HEX, _NUMBER)))
_INSTANCE = re.compile(r"^(?P<prefix>[\w.:-]+)@[^./]*(?P<suffix>\.[A-Za-z]+)$")
_EXTENSION = re.compile(r".(\.[A-Za-z][A-Za-z0-9]{0,9})$")
_WHITESPACE = re.compile(r"\s+")
#: Token kinds replaced by a fixed placeholder whatever they say.
_FIXED = {"url": "<url>", "ipv4": "<ip>", "hex": "<hex>", "number": "<n>"}
_KIND_UNSAFE = re.compile(r"[^A-Za-z0-9._@+<>-]")


@dataclass(frozen=True)
class FaultSignature:
    """A fault as the fleet knows it; see the module docstring for the parts and levels."""

    component_kind: str
    issue_kind: str
    cause: str
    evidence_pattern: str
    os_release: str

    def parts(self, level: str) -> dict[str, str]:
        """The parts of ``level`` (one of :data:`LEVELS`). Raises: KeyError for another level."""
        every = {"component_kind": self.component_kind, "issue_kind": self.issue_kind, "cause": self.cause,
                 "evidence_pattern": self.evidence_pattern, "os_release": self.os_release}
        wanted = {FINE: tuple(every), MEDIUM: ("component_kind", "issue_kind", "cause"),
                  COARSE: ("issue_kind", "cause")}[level]
        return {key: every[key] for key in wanted}

    def id(self, level: str) -> str:
        canonical = json.dumps({"level": level, **self.parts(level)}, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:ID_HEX_DIGITS]

    @property
    def fine(self) -> str:
        return self.id(FINE)

    @property
    def medium(self) -> str:
        return self.id(MEDIUM)

    @property
    def coarse(self) -> str:
        return self.id(COARSE)

    @property
    def label(self) -> str:
        """The medium level as people read it: ``nginx / config_invalid / config_invalid``."""
        return f"{self.component_kind} / {self.issue_kind} / {self.cause}"

    def as_dict(self) -> dict[str, str]:
        return {**self.parts(FINE), "fine": self.fine, "medium": self.medium, "coarse": self.coarse}


def fault_signature(issue: Issue, component: Component, diagnosis: Diagnosis, os_release: str = "",
                    *, hostnames: Iterable[str] = ()) -> FaultSignature:
    """The signature of ``issue`` on ``component`` as ``diagnosis`` explains it. ``os_release`` is
    :func:`os_release_label` of the target's facts ("" when unknown); ``hostnames`` are names of the
    target to remove from the evidence wherever they appear. Never raises."""
    evidence = {**issue.evidence, "(subject)": issue.subject}
    return FaultSignature(component_kind(component), str(issue.kind), _safe_word(diagnosis.cause),
                          evidence_pattern(evidence, hostnames=hostnames), _safe_word(os_release))


def os_release_label(os_release: OsRelease | None) -> str:
    """``debian-12`` (``id-version_id``), ``debian`` without a version, "" when unknown."""
    if os_release is None or not os_release.id:
        return ""
    return f"{os_release.id}-{os_release.version_id}" if os_release.version_id else os_release.id


def component_kind(component: Component) -> str:
    """The component's first package, else its first unit, else its name; instance names dropped."""
    raw = next(iter(component.packages), None) or next(iter(component.units), None) or component.name
    return _safe_word(_unit_instance(raw) or raw)


def evidence_pattern(evidence: Mapping[str, str], *, hostnames: Iterable[str] = ()) -> str:
    """The normalised, capped pattern of ``evidence`` (keys sorted; per key, distinct lines sorted)."""
    names = _hostname_pattern(hostnames)
    parts = []
    for key in sorted(evidence):
        value = str(evidence[key])[:VALUE_SCAN_MAX]
        lines = {normalise_evidence(line, hostnames=names) for line in value.splitlines()}
        parts.append(f"{normalise_evidence(key, hostnames=names)}: {' | '.join(sorted(lines - {''}))}")
    return _cap("; ".join(parts))


def normalise_evidence(text: str, *, hostnames: Iterable[str] | re.Pattern[str] | None = None) -> str:
    """``text`` with paths, numbers, ids, addresses and host names abstracted (module docstring),
    whitespace collapsed, capped at :data:`PATTERN_MAX`."""
    text = text[:VALUE_SCAN_MAX]
    names = hostnames if isinstance(hostnames, re.Pattern) else _hostname_pattern(hostnames or ())
    if names is not None:
        text = names.sub("<host>", text)
    return _cap(_WHITESPACE.sub(" ", _TOKENS.sub(_replace, text)).strip())


def _replace(match: re.Match[str]) -> str:
    kind, token = match.lastgroup or "", match.group()
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "at":
        return _unit_instance(token) or "<user@host>"
    if kind == "ipv6":
        return "<ip>" if _is_ipv6(token) else _NUMBERS_ONLY.sub(_replace, token)
    if kind == "path":
        return _path_pattern(token)
    # A dotted word: a file or unit name keeps its shape (its numbers abstracted), anything else is a host.
    suffix = token.rsplit(".", 1)[1].lower()
    return _NUMBERS_ONLY.sub(_replace, token) if suffix in FILE_SUFFIXES else "<host>"


def _path_pattern(path: str) -> str:
    segments = [s for s in path.split("/") if s]
    base = segments[-1]
    extension = _EXTENSION.search(base)
    file = "<file>" + (extension.group(1) if extension else "")
    if len(segments) == 1:
        return f"/{base}" if base in STANDARD_TOP_DIRS else f"/{file}"
    top = segments[0] if segments[0] in STANDARD_TOP_DIRS else "<dir>"
    return f"/{top}/{file}" if len(segments) == 2 else f"/{top}/<...>/{file}"


def _unit_instance(name: str) -> str | None:
    """``prefix@<i>.suffix`` for an instance of a template unit, None for anything else."""
    match = _INSTANCE.match(name)
    if match is None or match.group("suffix")[1:] not in FILE_SUFFIXES:
        return None
    return f"{match.group('prefix')}@<i>{match.group('suffix')}"


def _is_ipv6(token: str) -> bool:
    if not any(c.isalnum() for c in token):   # a bare "::" in prose (``a :: b``) is no address
        return False
    try:
        ipaddress.IPv6Address(token)
    except ValueError:
        return False
    return True


def _hostname_pattern(hostnames: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word pattern for the caller's host names (longest first)."""
    names = sorted({h for h in hostnames if h and h != "local"}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])", re.IGNORECASE)


def _safe_word(text: str) -> str:
    return _KIND_UNSAFE.sub("_", text)[:KIND_MAX]


def _cap(text: str) -> str:
    return text if len(text) <= PATTERN_MAX else text[:PATTERN_MAX - 1] + "…"
