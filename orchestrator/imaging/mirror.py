"""Find the Debian mirror the host's apt already uses (the machine may reach no other)."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.errors import ImageBuildError

APT_DIR = Path("/etc/apt")


def _deb822_entries(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current:
                entries.append(current)
            current = {}
            continue
        if line.startswith("#") or line[0].isspace():
            continue
        key, _, value = line.partition(":")
        current[key.strip().lower()] = value.strip()
    return entries


def _candidates(apt_dir: Path) -> list[tuple[str, list[str]]]:
    """(uri, suites) pairs from sources.list and *.sources files."""
    found: list[tuple[str, list[str]]] = []
    legacy = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in legacy:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match:
                found.append((match.group(1), [match.group(2)]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for entry in _deb822_entries(path.read_text(errors="replace")):
            if "deb" not in entry.get("types", "").split():
                continue
            for uri in entry.get("uris", "").split():
                found.append((uri, entry.get("suites", "").split()))
    return found


def host_mirror(suite: str, *, apt_dir: Path = APT_DIR) -> str:
    """The first main-archive URI (not the security archive) that serves ``suite``.

    Raises:
        ImageBuildError: no suitable source; the remedy names the config key to set.
    """
    main = [(uri, suites) for uri, suites in _candidates(apt_dir)
            if "security" not in uri and uri.startswith(("http://", "https://"))]
    for uri, suites in main:
        if suite in suites:
            return uri
    # A Debian mirror serves every release under dists/: the host's (say bookworm) mirror is where the
    # machine can reach another release (say bullseye) for a target of that release.
    for uri, _suites in main:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise ImageBuildError(
        f"no Debian mirror for suite {suite!r} in the host's apt sources ({apt_dir})",
        step="preflight",
        remedy="set `mirror:` in /etc/vmrepair/config.yaml",
    )
