"""Debian archive file names, ``NAME_VERSION_ARCH.deb``, as apt writes them into its cache.

apt escapes the epoch's ``:`` as ``%3a`` (``1:2.0-1`` is stored as ``foo_1%3a2.0-1_amd64.deb``); no other
character of a valid name, version or architecture needs escaping, and none of them may hold ``_``,
so the three parts split unambiguously. Names are only ever built from values that pass the syntax of
:mod:`orchestrator.facts.parse` again here: a file name is a path component, and a ``/`` or ``..``
smuggled into a version must never reach one.
"""

from __future__ import annotations

import re

from orchestrator.facts.model import Package
from orchestrator.facts.parse import ARCH, PACKAGE_NAME, VERSION

_EPOCH_ESCAPED = "%3a"
_FILE_NAME = re.compile(
    r"([a-z0-9][a-z0-9+.-]{0,127})_((?:[0-9]{1,10}%3a)?[0-9A-Za-z][0-9A-Za-z.+~-]{0,127})"
    r"_([a-z0-9][a-z0-9-]{0,31})\.deb"
)


def is_valid(package: Package) -> bool:
    """Name, version and architecture all have Debian's syntax (fullmatch: a trailing newline fails)."""
    return bool(PACKAGE_NAME.fullmatch(package.name) and VERSION.fullmatch(package.version)
                and ARCH.fullmatch(package.arch))


def deb_file_name(package: Package) -> str | None:
    """``NAME_VERSION_ARCH.deb`` with the epoch escaped; None if the package's fields are not valid."""
    if not is_valid(package):
        return None
    return f"{package.name}_{package.version.replace(':', _EPOCH_ESCAPED, 1)}_{package.arch}.deb"


def parse_deb_file_name(name: str) -> tuple[str, str, str] | None:
    """(name, version, arch) of a well-formed archive file name, epoch unescaped; None otherwise."""
    match = _FILE_NAME.fullmatch(name)
    if match is None:
        return None
    package, version, arch = match.groups()
    return package, version.replace(_EPOCH_ESCAPED, ":", 1), arch
