"""`hypervisors:` section of config.yaml: libvirt hosts the troubleshooting VMs may run on (issue 15).

An empty list (the default) keeps the single local ``libvirt_uri``. Each entry names a libvirt URI,
the hypervisor's sshd (the jump host to the guests' forwarded SSH ports, and the way to ask it for a
free port), the directory that holds the synced images there, and how many vmrepair VMs it may run.

The URI is matched by a strict regex and never reaches a shell: libvirt opens it itself
(:func:`orchestrator.hypervisor.remote.libvirt_open_uri`). Key files are checked when the file loads,
with the same rule as every other key vmrepair reads (0600/0400, owned by root or by us).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orchestrator.config.values import AbsolutePath

LOCAL_URI = "qemu:///system"
#: ``qemu+ssh://[user@]host[:port]/system`` and nothing else: no query (the key and known_hosts come
#: from ``ssh:``), no session daemon, no other transport.
_URI_RE = re.compile(
    r"^qemu\+ssh://(?:(?P<user>[a-z_][a-z0-9_-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?/system$"
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9a-fA-F:]+)$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _uri(text: str) -> str:
    if text == LOCAL_URI:
        return text
    match = _URI_RE.match(text)
    if match is None:
        raise ValueError(f"{text[:120]!r}: use qemu+ssh://user@host[:port]/system (no query: the key and "
                         "known_hosts come from `ssh:`) or qemu:///system")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"{text[:120]!r}: port {port} out of range")
    return text


def _private_file(path: Path) -> Path:
    # Whoever can read the key logs in to the hypervisor as root: the rule of orchestrator.transport.sshkey.
    try:
        st = path.lstat()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.getuid()) or mode & 0o077:
        raise ValueError(f"{path}: unsafe: mode {mode:04o}, owner uid {st.st_uid} (needs a regular file"
                         f" with mode 0600 or 0400 owned by root or uid {os.getuid()}; chmod 600 {path})")
    return path


def _pinning_file(path: Path) -> Path:
    # known_hosts decides which host we trust: nobody but its owner may change it.
    try:
        st = path.lstat()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.getuid()) or st.st_mode & 0o022:
        raise ValueError(f"{path}: unsafe: needs a regular file owned by root or uid {os.getuid()}, "
                         f"not writable by group or others (chmod go-w {path})")
    return path


LibvirtUri = Annotated[str, AfterValidator(_uri)]
PrivateKeyFile = Annotated[AbsolutePath, AfterValidator(_private_file)]
KnownHostsFile = Annotated[AbsolutePath, AfterValidator(_pinning_file)]


class HypervisorSsh(_Strict):
    host: str = Field(pattern=_HOST_RE.pattern, description="address of the hypervisor's sshd")
    port: int = Field(default=22, gt=0, lt=65536)
    user: str = Field(default="root", pattern=_USER_RE.pattern)
    identity_file: PrivateKeyFile = Field(description="private key (0600, owned by root or us)")
    known_hosts: KnownHostsFile = Field(
        description="pins the hypervisor's host key (required: unknown keys are refused)")


class HypervisorSettings(_Strict):
    name: str = Field(pattern=_NAME_RE.pattern, description="short name used in messages and records")
    uri: LibvirtUri = Field(description="qemu+ssh://user@host[:port]/system or qemu:///system")
    ssh: HypervisorSsh | None = Field(
        default=None, description="the hypervisor's sshd (required for qemu+ssh:// URIs)")
    image_dir: AbsolutePath = Field(
        description="directory on that host for synced images (a libvirt dir pool), root-only")
    max_vms: int = Field(default=4, ge=1, le=256, description="vmrepair VMs it may run at once")

    @property
    def is_remote(self) -> bool:
        return self.uri != LOCAL_URI

    @model_validator(mode="after")
    def _ssh_for_remote(self) -> HypervisorSettings:
        if self.is_remote and self.ssh is None:
            raise ValueError(f"{self.name}: a qemu+ssh:// hypervisor needs `ssh:` (host, identity_file, "
                             "known_hosts)")
        return self


def _unique_names(items: list[HypervisorSettings]) -> list[HypervisorSettings]:
    names = [h.name for h in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"hypervisor names must be unique: {', '.join(twice)} repeated")
    return items


HypervisorList = Annotated[list[HypervisorSettings], AfterValidator(_unique_names)]
