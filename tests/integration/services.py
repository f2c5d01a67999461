"""The services patient: a VM from template ``debian-12-services`` (the default guest plus apache2 on port
8088 and mariadb-server), the target that host-layer tests repair. A plain helper module, no tests.

- What a repair run must watch there: :data:`WATCH_YAML` is the ``watch:`` section of a config.yaml
  (for a config file written for the CLI or a daemon); :func:`services_watch` is the same, validated
  like config.yaml is, and :func:`services_app` an ``App`` whose settings watch it (for ``run_repair``).
- Faults an admin makes, one per kind the repair has to undo (:data:`FAULTS`): a broken file, a removed
  directory, a unit state. Each injector breaks the patient over a ``Transport`` and returns only once
  the service is down; it raises :class:`FaultNotInjectedError` if the service still runs.

A module fixture boots the patient with ``yield from booted_patient(app, "svc", HEALTHY, TEMPLATE)``
(tests/integration/helpers.py; it waits for boot to finish, mariadb's start included).

apache2 does not use port 8080: sampleapp has 127.0.0.1:8080 in every guest, in the patient and in the
debian-12 troubleshooting VM a layer installs apache2 into, and apache2 could not bind it ("Address
already in use"). Port 80 is nginx's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

import yaml

from orchestrator.app import App
from orchestrator.components.config import WatchConfig, WatchFile, build_watch_config
from orchestrator.config.settings import Settings
from orchestrator.transport.base import Transport

TEMPLATE: Final = "debian-12-services"
APACHE_PORT: Final = 8088
APACHE_URL: Final = f"http://127.0.0.1:{APACHE_PORT}/"
APACHE_UNIT: Final = "apache2.service"
MARIADB_UNIT: Final = "mariadb.service"
#: Bounds every systemctl call of an injector (a stop under TCG takes a few seconds).
SYSTEMCTL_TIMEOUT_S: Final = 120.0

#: The ``watch:`` section for the services patient. ``extend_defaults`` keeps the default guest's
#: components (nginx, sampleapp, sshd...), which the patient has too.
#: - apache2: its document root is data, so the troubleshooting VM serves the same page.
#: - mariadb: ``mariadbd --help --verbose`` reads every option file and exits non-zero on an
#:   unknown option (7) or an unreadable ``!includedir`` (1), which are what stop the server;
#:   bookworm's 10.11 has no ``--validate-config`` (as root it tries to start a server and exits 1,
#:   even on a healthy config). A malformed ``[group`` line is reported but passes, and the server
#:   starts with it too. /var/lib/mysql is not data here: capturing it would copy the files of a
#:   running InnoDB, an inconsistent copy, into the VM. mariadb.socket (enabled by the
#:   package) is not a unit of the component: restarting it while the server runs fails and leaves
#:   the socket inactive. No log_paths: bookworm's mariadb logs to the journal (no /var/log/mysql).
WATCH_YAML: Final = f"""\
watch:
  extend_defaults: true
  components:
    - name: apache2
      units: [{APACHE_UNIT}]
      config_paths: [/etc/apache2]
      unit_paths: [/etc/systemd/system/apache2.service.d]
      data_paths: [/var/www/apache2]
      config_test: [apache2ctl, configtest]
      http:
        - url: {APACHE_URL}
      packages: [apache2, apache2-bin, apache2-data, apache2-utils]
      log_paths: [/var/log/apache2]
    - name: mariadb
      units: [{MARIADB_UNIT}]
      config_paths: [/etc/mysql]
      unit_paths: [/etc/systemd/system/mariadb.service.d]
      config_test: [mariadbd, --help, --verbose]
      packages: [mariadb-server, mariadb-server-core, mariadb-client, mariadb-client-core,
                 mariadb-common, mysql-common]
"""


def services_watch() -> WatchConfig:
    """The watch configuration of :data:`WATCH_YAML`, validated as config.yaml's ``watch:`` is."""
    document = yaml.safe_load(WATCH_YAML)
    return build_watch_config(WatchFile.model_validate(document["watch"]))


def services_settings(settings: Settings) -> Settings:
    """``settings`` with the services patient's watch configuration."""
    return dataclasses.replace(settings, watch=services_watch())


@contextlib.contextmanager
def services_app(app: App) -> Iterator[App]:
    """An App like ``app`` whose runs watch apache2 and mariadb too (its own libvirt connection,
    closed afterwards)::

        with services_app(app) as svc:
            outcome = run_repair(svc, f"vm:{name}", RunOptions(assume_yes=True))
    """
    own = App(services_settings(app.settings))
    try:
        yield own
    finally:
        own.close()


# --- faults -------------------------------------------------------------------------------------------


class FaultNotInjectedError(AssertionError):
    """An injector ran but the service still runs: the patient's template changed under the fault."""


FaultKind = Literal["file", "directory", "unit-state"]


@dataclass(frozen=True)
class ServiceFault:
    """A named fault for tests to parametrize over."""

    name: str
    component: str
    kind: FaultKind
    inject: Callable[[Transport], None]


def break_apache_config_file(ssh: Transport) -> None:
    """FILE: a misspelled directive (``DocumentRot``) in the default site, then a restart.

    ``apache2ctl configtest`` exits 1 ("Invalid command 'DocumentRot'"), apache2.service fails and
    port 8088 refuses connections.
    """
    site = "/etc/apache2/sites-available/000-default.conf"
    ssh.check(["sed", "-i", r"s/^\(\s*\)DocumentRoot /\1DocumentRot /", "--", site])
    ssh.check(["grep", "-q", "DocumentRot ", "--", site])
    _restart_expecting_failure(ssh, APACHE_UNIT)


def remove_apache_mods_enabled(ssh: Transport) -> None:
    """DIRECTORY: /etc/apache2/mods-enabled removed (an admin "cleaning up" the symlink farm), then a
    restart.

    apache2.conf includes it with ``IncludeOptional``, so nothing says it is missing; without the MPM
    it loads, ``apache2ctl configtest`` exits 1 ("AH00534: No MPM loaded"), apache2.service fails and
    port 8088 refuses connections. (Removing sites-enabled instead breaks nothing a probe sees: apache2
    starts and answers 200 with a listing of /var/www/html.)
    """
    ssh.check(["rm", "-rf", "--", "/etc/apache2/mods-enabled"])
    _restart_expecting_failure(ssh, APACHE_UNIT)


def remove_mariadb_conf_dir(ssh: Transport) -> None:
    """DIRECTORY: /etc/mysql/mariadb.conf.d removed, then a restart.

    mariadb.cnf names it with ``!includedir``: ``mariadbd`` stops with "Can't read dir of
    '/etc/mysql/mariadb.conf.d/'" and "Fatal error in defaults handling", so the config test exits 1
    and mariadb.service fails (the ``mariadb`` client fails the same way).
    """
    ssh.check(["rm", "-rf", "--", "/etc/mysql/mariadb.conf.d"])
    _restart_expecting_failure(ssh, MARIADB_UNIT)


def mask_mariadb(ssh: Transport) -> None:
    """UNIT-STATE: ``systemctl mask --now mariadb.service`` (stopped, and masked so nothing starts it).

    The configuration is intact (the config test passes): only the unit state is wrong. mariadb.socket
    stays enabled and listening, so a client still connects, but nothing answers: ``mariadb -e 'select
    1'`` fails with "ERROR 2013 (HY000): Lost connection to server at 'handshake...'".
    """
    ssh.check(["systemctl", "mask", "--now", "--", MARIADB_UNIT], timeout=SYSTEMCTL_TIMEOUT_S)
    state = ssh.run(["systemctl", "is-enabled", "--", MARIADB_UNIT]).stdout_text.strip()
    if state != "masked":
        raise FaultNotInjectedError(f"{MARIADB_UNIT} is {state!r} after `systemctl mask`, not masked")
    _require_down(ssh, MARIADB_UNIT)


FAULTS: Final[tuple[ServiceFault, ...]] = (
    ServiceFault("apache2-config-file", "apache2", "file", break_apache_config_file),
    ServiceFault("apache2-mods-enabled", "apache2", "directory", remove_apache_mods_enabled),
    ServiceFault("mariadb-conf-dir", "mariadb", "directory", remove_mariadb_conf_dir),
    ServiceFault("mariadb-masked", "mariadb", "unit-state", mask_mariadb),
)


def _restart_expecting_failure(ssh: Transport, unit: str) -> None:
    # Both services fail their start within seconds here; the bound keeps a hang from blocking a test.
    ssh.run(["systemctl", "restart", "--", unit], timeout=SYSTEMCTL_TIMEOUT_S)
    _require_down(ssh, unit)


def _require_down(ssh: Transport, unit: str) -> None:
    state = ssh.run(["systemctl", "is-active", "--", unit]).stdout_text.strip()
    if state == "active":
        raise FaultNotInjectedError(f"{unit} is still active after the fault")
