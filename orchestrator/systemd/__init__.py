"""systemd on a target: the one place that builds ``systemctl`` argv, runs it and reads its answers.

Modelled on testinfra's ``modules/service.py``. Everything goes through a
:class:`~orchestrator.transport.base.Transport`; this package depends only on
:mod:`orchestrator.transport`, :mod:`orchestrator.errors` and the standard library, so any package
(detect, health, apply, quarantine, reboot, hypervisor ...) may use it.

Argv builders (:mod:`.argv`, pure; unit names always follow ``--``)::

    unit_argv(verb, unit)                      systemctl VERB -- UNIT   (verb in UNIT_VERBS)
    is_active_argv(unit, *, quiet=False)       systemctl is-active [--quiet] -- UNIT
    is_enabled_argv(unit)                      systemctl is-enabled -- UNIT
    show_argv(*units, properties)              systemctl show --property=A,B -- UNIT...
    daemon_reload_argv()                       systemctl daemon-reload
    is_system_running_argv(*, wait=False)      systemctl is-system-running [--wait]
    list_failed_argv()                         systemctl list-units --state=failed --plain ...
    reboot_argv()                              systemctl --no-block reboot
    no_block_argv(verb, unit)                  systemctl --no-block VERB -- UNIT   (job verbs)
    kill_argv(unit, *, signal="SIGKILL")       systemctl kill --signal=SIG -- UNIT

Unit file locations (:mod:`.paths`, lexical)::

    UNIT_FILE_DIRS, is_unit_file(path)         a change below them needs a daemon-reload

Parsing ``systemctl show`` (:mod:`.show`, never raises)::

    parse_show(text, properties, *, max_value=MAX_VALUE) -> tuple[UnitInfo, ...]
    parse_show_one(text, properties, *, max_value=MAX_VALUE) -> UnitInfo
    UnitInfo(id, load_state, active_state, sub_state, unit_file_state, properties)

Asking (:mod:`.query`)::

    show(transport, units, properties, *, timeout=SHOW_TIMEOUT_S, max_value=MAX_VALUE) -> ShowAnswer
    active_state(transport, unit, *, timeout) -> str           ("unknown" for a garbled answer)
    unit_file_state(transport, unit, *, timeout) -> str        (is-enabled; "unknown" likewise)
    system_state(transport, *, timeout=30.0) -> str            ("unknown" when it cannot be asked)

The manager as a whole (:mod:`.manager`, answers with reasons, like ``show``)::

    system_running(transport, *, timeout=SHOW_TIMEOUT_S) -> SystemRunning(state, unavailable_reason)
    failed_units(transport, *, timeout=SHOW_TIMEOUT_S) -> FailedUnits(units, more, rejected, ...)
    parse_failed_units(text) -> FailedUnits    (never raises; invalid unit names are only counted)

Changing (:mod:`.control`; a non-zero exit or a timeout is a :class:`UnitCommand`, not an error)::

    restart(transport, unit, *, timeout=JOB_TIMEOUT_S, reset_timeout=QUICK_TIMEOUT_S) -> UnitCommand
    reset_failed_then(transport, verb, unit, *, timeout=..., reset_timeout=...) -> UnitCommand
    unit_command(transport, verb, unit, *, timeout=None) -> UnitCommand
    daemon_reload(transport, *, timeout=QUICK_TIMEOUT_S) -> UnitCommand
    run_systemctl(transport, argv, *, timeout) -> UnitCommand
    UnitCommand.raise_for_status(host) / .raise_for_timeout(host)   to turn a result into an error

A restart that cannot hang (:mod:`.bounded`; a hung stop is killed through systemd, never raised)::

    bounded_restart(transport, unit, *, deadline_s=RESTART_DEADLINE_S, ...) -> RestartOutcome
    RestartOutcome(unit, end: RestartEnd STARTED|FAILED|HUNG, active_state, sub_state, waited_s, commands)

``restart`` is *the* "reset-failed, then restart" of vmrepair: use it rather than writing the two
commands again. Callers that must stop on a hung or failed command chain ``.raise_for_timeout(host)``
or ``.raise_for_status(host)``; a timeout is then the transport's own CommandTimeoutError.
"""

from __future__ import annotations

from orchestrator.systemd.argv import (
    JOB_VERBS,
    SYSTEMCTL,
    UNIT_VERBS,
    daemon_reload_argv,
    is_active_argv,
    is_enabled_argv,
    is_system_running_argv,
    kill_argv,
    list_failed_argv,
    no_block_argv,
    reboot_argv,
    show_argv,
    unit_argv,
)
from orchestrator.systemd.bounded import RESTART_DEADLINE_S, RestartEnd, RestartOutcome, bounded_restart
from orchestrator.systemd.control import (
    JOB_TIMEOUT_S,
    QUICK_TIMEOUT_S,
    UnitCommand,
    daemon_reload,
    reset_failed_then,
    restart,
    run_systemctl,
    unit_command,
)
from orchestrator.systemd.manager import (
    MAX_FAILED_UNITS,
    FailedUnits,
    SystemRunning,
    failed_units,
    parse_failed_units,
    system_running,
)
from orchestrator.systemd.paths import UNIT_FILE_DIRS, is_unit_file
from orchestrator.systemd.query import (
    NO_SYSTEMD_MARKERS,
    SHOW_TIMEOUT_S,
    UNKNOWN,
    ShowAnswer,
    active_state,
    show,
    system_state,
    unit_file_state,
)
from orchestrator.systemd.show import MAX_VALUE, UnitInfo, parse_show, parse_show_one

__all__ = [
    "JOB_TIMEOUT_S",
    "JOB_VERBS",
    "MAX_FAILED_UNITS",
    "MAX_VALUE",
    "NO_SYSTEMD_MARKERS",
    "QUICK_TIMEOUT_S",
    "RESTART_DEADLINE_S",
    "SHOW_TIMEOUT_S",
    "SYSTEMCTL",
    "UNIT_FILE_DIRS",
    "UNIT_VERBS",
    "UNKNOWN",
    "FailedUnits",
    "RestartEnd",
    "RestartOutcome",
    "ShowAnswer",
    "SystemRunning",
    "UnitCommand",
    "UnitInfo",
    "active_state",
    "bounded_restart",
    "daemon_reload",
    "daemon_reload_argv",
    "failed_units",
    "is_active_argv",
    "is_enabled_argv",
    "is_system_running_argv",
    "is_unit_file",
    "kill_argv",
    "list_failed_argv",
    "no_block_argv",
    "parse_failed_units",
    "parse_show",
    "parse_show_one",
    "reboot_argv",
    "reset_failed_then",
    "restart",
    "run_systemctl",
    "show",
    "show_argv",
    "system_running",
    "system_state",
    "unit_argv",
    "unit_command",
    "unit_file_state",
]
