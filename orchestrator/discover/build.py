"""Turn a :class:`~orchestrator.discover.read.Discovery` into components: one per enabled or running
service, with its sockets, files, directories, user, ports and packages.

What a component gets, and why:

- ``units``: the service; ``sockets``: the enabled/running sockets that trigger it (probed, never
  restarted).
- ``unit_paths``: ``/etc/systemd/system/UNIT`` and ``UNIT.d`` always (an override or a drop-in an
  admin adds there is the commonest way to break a unit; both are watched before they exist, so a
  baseline records them as absent), the unit file itself when it lives under /etc (an admin's own
  unit), and drop-in files under /etc.
- ``config_paths``: the daemon's profile (:mod:`orchestrator.discover.profiles`) when vmrepair knows
  it; otherwise the owning package's conffiles, a package's own directory (``/etc/redis``) as a whole
  when it holds two or more of them. Directories shared by many packages (``/etc/default``,
  ``/etc/logrotate.d``) contribute single files, and directories of secrets (``/etc/ssh``,
  ``/etc/ssl``) nothing: captures travel to a VM. ``EnvironmentFile=`` files are always added.
- ``writable_paths``: ``StateDirectory=``, ``LogsDirectory=``, ``ReadWritePaths=``; never captured as
  data (a running database's files copied live are an inconsistent copy).
- ``vital``: the profile's word, else whether the service listens on a TCP port (it serves something).

Skipped: transient units (``systemd-run``), generated units (their source, e.g. fstab, is watched
instead), per-user managers (``user@UID.service``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import replace

from orchestrator.discover.profiles import Profile, profile_for
from orchestrator.discover.read import Discovery, UnitFacts, under
from orchestrator.model import Component

ETC_UNITS = "/etc/systemd/system"
#: Where generators and transient units live: nothing an admin edits.
GENERATED_ROOTS = ("/run/systemd/generator", "/run/systemd/generator.early", "/run/systemd/generator.late",
                   "/run/systemd/transient")
SKIPPED_TEMPLATES = ("user@", "user-runtime-dir@")
#: Directories many packages drop one file into: each file counts alone.
SHARED_DIRS = frozenset({
    "/etc/default", "/etc/init.d", "/etc/logrotate.d", "/etc/cron.d", "/etc/cron.daily",
    "/etc/cron.hourly", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/pam.d", "/etc/security",
    "/etc/systemd", "/etc/apparmor.d", "/etc/ufw", "/etc/sudoers.d", "/etc/dbus-1", "/etc/X11",
    "/etc/network", "/etc/profile.d", "/etc/sysctl.d", "/etc/modprobe.d", "/etc/udev", "/etc/apt",
    "/etc/bash_completion.d", "/etc/ld.so.conf.d", "/etc/tmpfiles.d", "/etc/kernel", "/etc/rsyslog.d",
    "/etc/init", "/etc/insserv.conf.d", "/etc/xdg", "/etc/polkit-1", "/etc/ppp", "/etc/sv",
})
#: Never captured, whatever package owns files there: host keys and private keys.
SECRET_DIRS = ("/etc/ssh", "/etc/ssl", "/etc/letsencrypt", "/etc/pki")
_NAME_BAD = re.compile(r"[^a-z0-9_-]+")


def component_name(unit: str) -> str:
    """A component name from a unit name: ``getty@tty1.service`` → ``getty-tty1``."""
    stem = unit.rsplit(".", 1)[0].lower()
    name = _NAME_BAD.sub("-", stem).strip("-_")[:41] or "unit"
    return name if name[0].isalnum() else f"u{name}"[:41]


def components(found: Discovery, include: Iterable[str] = ()) -> list[Component]:
    """One component per enabled or running service (module docstring), sorted by name; units in
    ``include`` (the configured ones) count too when systemd knows them, enabled or not: a masked or
    stopped nginx is still nginx, with its profile's paths and config test."""
    wanted_too = {u.unit for u in found.units if u.unit in set(include) and u.load not in ("", "not-found")}
    sockets: dict[str, list[str]] = {}
    for unit in found.units:
        if unit.unit.endswith(".socket") and unit.is_wanted and not _skipped(unit):
            for target in unit.triggers:
                sockets.setdefault(target, []).append(unit.unit)
    out: dict[str, Component] = {}
    for unit in found.units:
        if not unit.unit.endswith(".service") or _skipped(unit):
            continue
        if not unit.is_wanted and unit.unit not in sockets and unit.unit not in wanted_too:
            continue
        comp = _component(found, unit, tuple(sorted(sockets.get(unit.unit, ()))))
        if comp.name in out:   # two units with one name (a profile's aliases): the first keeps it
            comp = _renamed(comp, component_name(unit.unit))
        out.setdefault(comp.name, comp)
    return [out[name] for name in sorted(out)]


def _skipped(unit: UnitFacts) -> bool:
    return (unit.transient or unit.unit.startswith(SKIPPED_TEMPLATES)
            or under(unit.fragment, GENERATED_ROOTS))


def _component(found: Discovery, unit: UnitFacts, sockets: tuple[str, ...]) -> Component:
    profile = profile_for(unit.unit)
    owner = found.owners.get(unit.fragment, "")
    packages = [p.strip().split(":")[0] for p in owner.split(",") if p.strip()]
    # The admin's override locations, watched before they exist: a baseline then records them as
    # absent, so a unit file or drop-in that appears there later is known to be new.
    unit_paths = [f"{ETC_UNITS}/{unit.unit}", f"{ETC_UNITS}/{unit.unit}.d"]
    if under(unit.fragment, (ETC_UNITS,)):
        unit_paths.insert(0, unit.fragment)
    unit_paths += [p for p in unit.dropins if under(p, ("/etc",)) and not under(p, unit_paths)]
    if profile is not None:
        config = list(profile.config_paths)
        packages = list(dict.fromkeys((*profile.packages, *packages)))
    else:
        config = config_paths_from_conffiles(c for p in packages for c in found.conffiles.get(p, ()))
    config += [p for p in unit.env_files if not under(p, config)]
    ports = found.ports.get(unit.unit, ())
    logs = (*(profile.log_paths if profile else ()),
            *(p for p in unit.writable if under(p, ("/var/log",))))
    return Component(
        name=profile.name if profile else component_name(unit.unit),
        vital=_vital(profile, ports),
        units=(unit.unit,),
        config_paths=tuple(dict.fromkeys(config)),
        unit_paths=tuple(dict.fromkeys(unit_paths)),
        config_test=profile.config_test if profile else (),
        http=profile.http if profile else (),
        packages=tuple(packages),
        log_paths=tuple(dict.fromkeys(logs)),
        origin="discovered",
        user=unit.user, group=unit.group,
        writable_paths=unit.writable,
        ports=ports,
        sockets=sockets,
    )


def _vital(profile: Profile | None, ports: tuple[int, ...]) -> bool:
    if profile is not None and profile.vital is not None:
        return profile.vital
    return bool(ports)


def _renamed(comp: Component, name: str) -> Component:
    return replace(comp, name=name)


def config_paths_from_conffiles(conffiles: Iterable[str]) -> list[str]:
    """Config paths for a daemon vmrepair has no profile for (module docstring)."""
    by_dir: dict[str, list[str]] = {}
    for raw in conffiles:
        path = posixpath.normpath(raw)
        if not under(path, ("/etc",)) or under(path, SECRET_DIRS):
            continue
        parts = path.split("/")
        top = "/".join(parts[:3]) if len(parts) > 3 else path
        by_dir.setdefault(top, []).append(path)
    out: list[str] = []
    for top, files in sorted(by_dir.items()):
        if top not in SHARED_DIRS and len(files) >= 2:
            out.append(top)
        else:
            out += sorted(files)
    return out
