"""Resolve an ``ssh://`` target through an OpenSSH client config (``~/.ssh/config``) into an endpoint.

Only what decides *where and as whom* vmrepair connects is taken from the file: ``HostName``, ``User``,
``Port``, the first ``IdentityFile`` and ``ProxyJump``. Host keys stay pinned in vmrepair's own
``targets.known_hosts``; nothing in the file is ever executed. Options that would run a command
(``ProxyCommand``, ``Match exec``, ``LocalCommand``/``PermitLocalCommand``, ``KnownHostsCommand``) are
refused rather than ignored: the operator configured them because the host needs them, and silently
connecting another way would reach something else, or nothing. ``Include`` is refused for the same
reason (vmrepair reads one file). ``Match exec`` is refused wherever it is in the file, because
paramiko runs its command while *looking up* any host.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

import paramiko

from orchestrator.errors import ConfigError

#: Login names (the same rule as the target URL's) and host names or bracketed IPv6 addresses.
_USER = r"[a-z_][a-z0-9_-]{0,31}"
_HOST = r"[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]+\]"
_HOP_RE = re.compile(rf"^(?:ssh://)?(?:(?P<user>{_USER})@)?(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?$")
_USER_RE = re.compile(rf"^{_USER}$")
_HOSTNAME_RE = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|[0-9a-fA-F:]+)$")
_SETTING_RE = re.compile(r"^(\w+)(?:\s*=\s*|\s+)(.+)$")
#: Longest ProxyJump chain followed (a hop whose own ProxyJump leads back would never end).
MAX_HOPS = 8
_MAX_CONFIG_BYTES = 1024 * 1024
_REMEDY = "remove it for this host, or point `targets.ssh_config` at a file without it"


@dataclass(frozen=True)
class SshEndpoint:
    """Where to connect and as whom. ``jumps`` are the hops in connection order (each without jumps
    of its own: the chain is already flat)."""

    host: str
    port: int
    user: str
    key_file: Path
    jumps: tuple[SshEndpoint, ...] = ()


@dataclass(frozen=True)
class SshConfigFile:
    """A parsed client config; build it with :func:`load_ssh_config`."""

    path: Path
    parsed: paramiko.SSHConfig

    def lookup(self, name: str) -> dict[str, object]:
        try:
            return dict(self.parsed.lookup(name))
        except (paramiko.ConfigParseError, ValueError, OSError) as exc:
            raise self.error(f"cannot resolve host {name!r}: {exc}") from exc

    def error(self, message: str, remedy: str | None = None) -> ConfigError:
        return ConfigError(f"ssh config {self.path}: {message}", file=str(self.path), remedy=remedy)


def default_ssh_config() -> Path | None:
    """The invoking user's ``~/.ssh/config`` when it exists (the user vmrepair runs as, whose home
    comes from the password database: a HOME inherited through sudo may be someone else's)."""
    path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "config"
    return path if path.exists() else None


def load_ssh_config(path: Path) -> SshConfigFile:
    """Read and parse ``path``, refusing a file others could have written and any ``Match exec``.

    Raises:
        ConfigError: unreadable, unsafe (like OpenSSH: owned by another user than the invoking one
            or root, or writable by group or others), unparsable, or containing ``Match exec``.
    """
    where = f"ssh config {path}"
    try:
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}", file=str(path),
                          remedy="create it, or set `targets.ssh_config` to an existing file") from exc
    # The file decides which host and key vmrepair uses as root: OpenSSH's own rule for it.
    if st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"{where}: unsafe: owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o} (needs a"
            f" regular file owned by uid {os.getuid()} or root, not writable by group or others)",
            file=str(path), remedy=f"chmod go-w {path}")
    if len(data) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: larger than {_MAX_CONFIG_BYTES} bytes", file=str(path))
    text = data.decode("utf-8", errors="replace")
    _refuse_match_exec(text, path)
    try:
        parsed = paramiko.SSHConfig.from_text(text)
    except (paramiko.ConfigParseError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}", file=str(path)) from exc
    return SshConfigFile(path, parsed)


def _refuse_match_exec(text: str, path: Path) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SETTING_RE.match(line.strip())
        if not match or match.group(1).lower() != "match":
            continue
        try:
            criteria = shlex.split(match.group(2))
        except ValueError as exc:
            raise ConfigError(f"ssh config {path}: line {number}: unparsable Match: {exc}",
                              file=str(path)) from exc
        if any(word.lstrip("!").lower() == "exec" for word in criteria):
            raise ConfigError(
                f"ssh config {path}: line {number}: `Match exec` runs a command; vmrepair refuses it",
                file=str(path), remedy="remove it, or point `targets.ssh_config` at a file without it")


def resolve_endpoint(
    name: str,
    *,
    config: SshConfigFile | None,
    default_key: Path,
    user: str | None = None,
    port: int | None = None,
) -> SshEndpoint:
    """The endpoint of host ``name``: ``user`` and ``port`` (from the target URL) win over the file's
    ``User``/``Port``; without either, ``root`` and 22. ``default_key`` is used when the file names no
    ``IdentityFile`` for the host.

    Raises:
        ConfigError: the file gives the host a command-running option, an unusable value, a relative
            IdentityFile, or a ProxyJump chain longer than :data:`MAX_HOPS` (a loop).
    """
    return _resolve(name, config, default_key, user, port, depth=0)


def _resolve(name: str, config: SshConfigFile | None, default_key: Path, user: str | None,
             port: int | None, *, depth: int) -> SshEndpoint:
    options = config.lookup(name) if config is not None else {}
    if config is not None:
        _refuse_commands(name, options, config)
    host = str(options.get("hostname") or name)
    if not _HOSTNAME_RE.match(host):
        raise _bad(config, name, "HostName", host)
    login = user or str(options.get("user") or "root")
    if not _USER_RE.match(login):
        raise _bad(config, name, "User", login)
    endpoint = SshEndpoint(host, port or _port(options, name, config), login,
                           _key_file(options, name, config, default_key))
    jump_text = str(options.get("proxyjump") or "none")
    if jump_text.lower() == "none" or config is None:
        return endpoint
    if depth >= MAX_HOPS:
        raise config.error(f"host {name!r}: ProxyJump chain longer than {MAX_HOPS} hops (a loop?)")
    hops: list[SshEndpoint] = []
    for index, hop_text in enumerate(jump_text.split(",")):
        hop_match = _HOP_RE.match(hop_text.strip())
        if hop_match is None:
            raise _bad(config, name, "ProxyJump", hop_text)
        hop_port = int(hop_match.group("port")) if hop_match.group("port") else None
        hop = _resolve(hop_match.group("host").strip("[]"), config, default_key,
                       hop_match.group("user"), hop_port, depth=depth + 1)
        # As in OpenSSH, only the first hop's own ProxyJump is followed: each later hop is reached
        # through the one before it.
        hops.extend(hop.jumps if index == 0 else ())
        hops.append(SshEndpoint(hop.host, hop.port, hop.user, hop.key_file))
    if len(hops) > MAX_HOPS:
        raise config.error(f"host {name!r}: ProxyJump chain longer than {MAX_HOPS} hops (a loop?)")
    return SshEndpoint(endpoint.host, endpoint.port, endpoint.user, endpoint.key_file, tuple(hops))


def _refuse_commands(name: str, options: dict[str, object], config: SshConfigFile) -> None:
    refused = [
        ("ProxyCommand", options.get("proxycommand") is not None),
        ("LocalCommand", "localcommand" in options),
        ("PermitLocalCommand", str(options.get("permitlocalcommand", "no")).lower() != "no"),
        ("KnownHostsCommand", "knownhostscommand" in options),
        ("Include", "include" in options),
    ]
    for key, is_set in refused:
        if is_set:
            why = "reads other files" if key == "Include" else "runs a command"
            raise config.error(f"host {name!r}: `{key}` {why}; vmrepair refuses it", remedy=_REMEDY)


def _port(options: dict[str, object], name: str, config: SshConfigFile | None) -> int:
    text = str(options.get("port") or "22")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad(config, name, "Port", text)
    return int(text)


def _key_file(options: dict[str, object], name: str, config: SshConfigFile | None,
              default_key: Path) -> Path:
    files = options.get("identityfile")
    if not isinstance(files, list) or not files:
        return default_key
    # paramiko has expanded ~ and %d; the key itself is checked (owner, mode) when it is loaded.
    path = Path(str(files[0]))
    if not path.is_absolute():
        raise _bad(config, name, "IdentityFile", str(path), "it must be an absolute path (or ~/...)")
    return path


def _bad(config: SshConfigFile | None, name: str, key: str, value: str,
         why: str = "not a valid value") -> ConfigError:
    message = f"host {name!r}: {key} {value!r}: {why}"
    if config is None:
        return ConfigError(message)
    return config.error(message)
