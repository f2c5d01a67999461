"""Parsers of what discovery reads from a target: ``systemctl list-units``, ``ss -ltnp``, dpkg's
conffiles. Every input is untrusted target output: lines that do not look like what the tool prints
are dropped (counted, so the caller can say so), sizes are capped, and nothing here raises."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrator.facts.parse import PACKAGE_NAME, UNIT, is_plain_path

#: More units than this on one host are cut (2,000 units is a big host; this is ten times that).
MAX_UNITS = 20_000
MAX_SOCKETS = 4_096
MAX_CONFFILES = 20_000
_STATE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
#: ``users:(("nginx",pid=790,fd=6),("nginx",pid=789,fd=6))`` of ``ss -p``.
_SS_PID = re.compile(r"pid=(\d{1,9})\b")
_PORT = re.compile(r":(\d{1,5})$")


@dataclass(frozen=True)
class ListedUnit:
    """One line of ``systemctl list-units --plain --no-legend``."""

    unit: str
    load: str
    active: str
    sub: str


@dataclass
class Listing:
    units: list[ListedUnit] = field(default_factory=list)
    rejected: int = 0


def parse_list_units(text: str) -> Listing:
    """``UNIT LOAD ACTIVE SUB DESCRIPTION`` per line; a failed unit may start with ``●`` (without
    ``--plain``), which is dropped."""
    out = Listing()
    for line in text.splitlines():
        parts = line.replace("\u25cf", " ").split(None, 4)
        if not parts:
            continue
        if len(parts) < 4 or not UNIT.match(parts[0]) or not all(_STATE.match(p) for p in parts[1:4]):
            out.rejected += 1
            continue
        if len(out.units) >= MAX_UNITS:
            break
        out.units.append(ListedUnit(parts[0], parts[1], parts[2], parts[3]))
    return out


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: its port and the processes that hold it."""

    port: int
    pids: tuple[int, ...]


def parse_ss_listeners(text: str) -> list[Listener]:
    """``ss -H -ltnp``: ``LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=790,fd=6))``.

    The local address is the fourth column (``[::]:80``, ``*:22``, ``127.0.0.1%lo:53``); the process
    column is absent for sockets whose owner ss may not see."""
    out: list[Listener] = []
    for line in text.splitlines()[:MAX_SOCKETS]:
        parts = line.split()
        if len(parts) < 5 or parts[0] != "LISTEN":
            continue
        match = _PORT.search(parts[3])
        if match is None or not 0 < int(match.group(1)) < 65536:
            continue
        users = " ".join(parts[5:])
        pids = tuple(int(p) for p in _SS_PID.findall(users))
        out.append(Listener(int(match.group(1)), pids))
    return out


def parse_conffiles(text: str) -> dict[str, list[str]]:
    """``dpkg-query -W -f '${binary:Package}\\n${Conffiles}\\n'``: a package name line, then one
    `` /etc/path md5 [obsolete|remove-on-upgrade]`` line per conffile → {package: [paths]}.
    Obsolete conffiles are left out: the package no longer ships them."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    count = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            name = line.strip().split(":")[0]
            current = out.setdefault(name, []) if PACKAGE_NAME.match(name) else None
            continue
        parts = line.split()
        if current is None or len(parts) < 2 or "obsolete" in parts[2:] or count >= MAX_CONFFILES:
            continue
        if is_plain_path(parts[0]):
            current.append(parts[0])
            count += 1
    return out


def words(value: str) -> list[str]:
    """A space-separated ``systemctl show`` list (``Names=``, ``Triggers=``, ``StateDirectory=``)."""
    return value.split()


def unit_words(value: str) -> list[str]:
    return [w for w in words(value) if UNIT.match(w)]


def state_paths(value: str, root: str) -> list[str]:
    """``StateDirectory=mysql foo/bar`` → ``/var/lib/mysql`` ...: names are relative to ``root``;
    an absolute or ``..`` name is not something systemd accepts, so it is dropped."""
    out = []
    for word in words(value):
        name = word.split(":")[0]   # StateDirectory=foo:bar (v254+) names a symlink after the colon
        path = f"{root}/{name}"
        if not name.startswith("/") and is_plain_path(path):
            out.append(path)
    return out


def rw_paths(value: str) -> list[str]:
    """``ReadWritePaths=-/var/lib/x +/srv/y``: ``-`` (ignore if missing) and ``+`` prefixes dropped."""
    out = []
    for word in words(value):
        path = word.lstrip("-+")
        if is_plain_path(path):
            out.append(path)
    return out


def account(value: str) -> str:
    """``User=``/``Group=``: a name or a numeric id, as systemd accepts them; anything else is empty."""
    return value if re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?|\d{1,10}", value) else ""


def pid(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else 0
