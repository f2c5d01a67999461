"""What vmrepair knows about common daemons: a component's canonical name, config paths and config
test, applied to a unit that discovery found on the target (never to one it did not find)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.model import HttpCheck


@dataclass(frozen=True)
class Profile:
    """Knowledge about one daemon, keyed by the unit names it runs under."""

    #: Canonical component name (``sshd`` for ``ssh.service``): playbooks and baselines use it.
    name: str
    #: Unit names this profile applies to (``named.service`` and ``bind9.service`` are one daemon).
    units: tuple[str, ...]
    config_paths: tuple[str, ...] = ()
    #: argv that checks the configuration without starting the daemon; exit 0 means valid.
    config_test: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    log_paths: tuple[str, ...] = ()
    http: tuple[HttpCheck, ...] = ()
    #: None: decided by discovery (a daemon listening on a TCP port is vital).
    vital: bool | None = None


PROFILES: tuple[Profile, ...] = (
    Profile("nginx", ("nginx.service",), config_paths=("/etc/nginx",), config_test=("nginx", "-t"),
            packages=("nginx", "nginx-common"), log_paths=("/var/log/nginx",)),
    Profile("sshd", ("ssh.service", "sshd.service"),
            # Not all of /etc/ssh: host private keys never leave the target.
            config_paths=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"),
            config_test=("sshd", "-t"), packages=("openssh-server",)),
)

_BY_UNIT = {unit: profile for profile in PROFILES for unit in profile.units}


def profile_for(unit: str) -> Profile | None:
    """The profile of ``unit`` (``nginx.service``), or None when vmrepair knows nothing about it."""
    return _BY_UNIT.get(unit)
