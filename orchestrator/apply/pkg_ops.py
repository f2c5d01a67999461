"""Package operations on the target (``deb_install``, ``dpkg_configure``): preconditions, what the backup
keeps of them, the dpkg runs, and settling dpkg again when a rollback or a recovery finds it unfinished.

Every command is an argv from :mod:`orchestrator.dpkg` (names validated when the operation was built).

``deb_install`` on the target: the ``.deb`` (the package blob, also kept in the backup) is uploaded to
the agent's directory, its sha256 is checked on the target, and ``dpkg --force-confold -i`` runs with
services held back (our ``policy-rc.d``, removed afterwards), then the package must be installed-ok at
the operation's version.

What a rollback does after a ``deb_install`` (:func:`settle` then the usual file restore):

- It finishes dpkg first when the reinstall was cut short (a crash or a timeout left the package
  half-installed, unpacked or half-configured, or marked reinst-required): the same verified ``.deb`` is
  installed again from the backup, so dpkg's database and the files on disk agree again. When another
  dpkg holds the lock, nothing is forced: the rollback reports it and the files are still restored.
- It removes our ``policy-rc.d`` if a crash left it behind (only a file carrying our mark), and the
  uploaded ``.deb`` (a crash between the upload and its removal leaves it in the agent's directory, which
  is ``/run``: memory, until the next boot).
- It puts back, byte for byte with mode and owner, every file ``dpkg --verify`` reported as changed
  before the reinstall, and removes every file it reported missing (the reinstall recreated them): the
  package's files are exactly as before.

What it does not undo: dpkg's status database (a package that was half-configured before stays
configured: same version, ``ii``); what maintainer scripts did (users created, triggers such as
ldconfig or man-db, caches); files whose mode or owner alone had changed (``dpkg --verify`` reports
content only, and the reinstall resets them to the packaged metadata); conffiles are never touched by
either side (``--force-confold`` keeps them; a deleted conffile stays deleted).

``dpkg_configure`` runs with services held back too, as the step did in the VM: the maintainer scripts
do not start or restart the daemon halfway through the apply; the fix package's unit actions (the
restart that followed the step in the VM) do. It cannot be undone (there is no "unconfigure"): the apply
records a note, as for a log rotation, and a rollback leaves the configuration as it is (and does not
fail because of it); a rollback or a recovery still removes our ``policy-rc.d`` if a crash left it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator import dpkg
from orchestrator.agent.api import AgentApi
from orchestrator.agent.requests import DEFAULT_REMOTE_DIR
from orchestrator.errors import ApplyError, VmRepairError
from orchestrator.fixpkg.ops import DebInstallOp, DpkgConfigureOp, Operation
from orchestrator.transport.base import CommandResult, Transport
from orchestrator.transport.output import cap_output

log = logging.getLogger(__name__)

#: dpkg runs maintainer scripts: more time than a systemctl call, whatever the apply's command timeout.
MIN_DPKG_TIMEOUT_S = 600.0
#: Another dpkg holding the lock (an apply killed mid-run whose dpkg goes on, an unattended upgrade):
#: asked again this many times, this far apart, before the rollback reports it.
LOCK_RETRIES = 3
LOCK_WAIT_S = 10.0


@dataclass(frozen=True)
class PackageRecord:
    """A package a ``deb_install`` reinstalls, as the backup recorded it before the first change."""

    package: str
    architecture: str
    version: str
    #: The .deb's sha256: its content is ``files/<sha256>`` of the backup.
    sha256: str
    #: ``${db:Status-Abbrev}`` before the apply (``ii``, ``iF`` ...).
    status: str

    @property
    def spec(self) -> str:
        return dpkg.spec(self.package, self.architecture)


def dpkg_timeout(timeout: float) -> float:
    return max(timeout, MIN_DPKG_TIMEOUT_S)


def upload_dir(agent: AgentApi) -> str:
    """The agent's own directory (root-only): the .deb is uploaded there, never to a shared /tmp."""
    return str(getattr(agent, "remote_dir", DEFAULT_REMOTE_DIR))


def upload_path(remote_dir: str, sha256: str) -> str:
    """Where the .deb of blob ``sha256`` is uploaded in ``remote_dir``."""
    return f"{remote_dir}/deb-{sha256}.deb"


def status_of(transport: Transport, name: str, arch: str, *, timeout: float) -> dpkg.PackageStatus | None:
    """Raises: TransportError."""
    answer = transport.run(dpkg.status_argv(name), timeout=timeout)
    return next((s for s in dpkg.parse_status(answer.stdout_text, name) if s.arch == arch), None)


# -- preflight ------------------------------------------------------------------------------------


def holds_services(ops: Sequence[Operation]) -> bool:
    """Whether applying ``ops`` runs dpkg with our ``policy-rc.d`` in place (so a rollback or a recovery
    must remove it if a crash left it)."""
    return any(isinstance(op, DebInstallOp | DpkgConfigureOp) for op in ops)


@contextmanager
def services_held(transport: Transport, *, timeout: float) -> Iterator[None]:
    """Our ``policy-rc.d`` in place for the block (maintainer scripts neither start nor restart
    services), removed whatever happens.

    Raises:
        ApplyError: a ``policy-rc.d`` is there already (``set -C`` refused to replace it).
    """
    held = transport.run(dpkg.hold_services_argv(), stdin=dpkg.POLICY_RC_SCRIPT, timeout=timeout)
    if held.exit_status != 0:
        raise ApplyError(f"cannot hold services back: {dpkg.POLICY_RC} exists on the target")
    try:
        yield
    finally:
        transport.run(dpkg.release_services_argv(), timeout=timeout)


def check_preconditions(ops: Sequence[Operation], transport: Transport, *,
                        timeout: float) -> dict[str, dpkg.PackageStatus]:
    """Every package operation's precondition, checked on the target; returns the status of each package
    a ``deb_install`` reinstalls (by ``name:arch``). Reads only.

    Raises:
        ApplyError: ``target changed since capture: ...`` (another version, not installed, nothing to
            configure) or a ``policy-rc.d`` of the target's own that would decide what services do.
        TransportError: a query could not run.
    """
    found: dict[str, dpkg.PackageStatus] = {}
    if holds_services(ops) and \
            transport.run(["test", "-e", dpkg.POLICY_RC], timeout=timeout).exit_status == 0:
        raise ApplyError(f"the target has a {dpkg.POLICY_RC} of its own; dpkg under its policy "
                         "was not validated", remedy=f"remove or move {dpkg.POLICY_RC} aside and apply again")
    for op in ops:
        if isinstance(op, DebInstallOp):
            status = status_of(transport, op.package, op.architecture, timeout=timeout)
            if status is None or not status.is_present or status.version != op.version:
                has = "not installed" if status is None or not status.is_present else \
                    f"at {status.version} ({status.abbrev})"
                raise _changed(f"{op.spec} is {has}, the fix reinstalls {op.version}")
            found[op.spec] = status
        elif isinstance(op, DpkgConfigureOp):
            _check_configurable(op, transport, timeout=timeout)
    return found


def _check_configurable(op: DpkgConfigureOp, transport: Transport, *, timeout: float) -> None:
    if op.package == dpkg.ALL_PACKAGES:
        if not transport.run(dpkg.audit_argv(), timeout=timeout).stdout_text.strip():
            raise _changed("dpkg --audit reports nothing to configure any more")
        return
    answer = transport.run(dpkg.status_argv(op.package), timeout=timeout)
    statuses = dpkg.parse_status(answer.stdout_text, op.package)
    if not any(s.needs_configure for s in statuses):
        state = ", ".join(f"{s.arch} {s.abbrev}" for s in statuses) or "not installed"
        raise _changed(f"{op.package} has nothing to configure any more ({state})")


def _changed(what: str) -> ApplyError:
    return ApplyError(f"target changed since capture: {what}",
                      remedy="run the repair again so the fix is rebuilt from the target's current state")


# -- backup ---------------------------------------------------------------------------------------


def files_to_back_up(op: DebInstallOp, transport: Transport, *, timeout: float) -> list[dpkg.VerifyFinding]:
    """The package's files ``dpkg --verify`` reports as changed or missing: what the reinstall will
    change, so what the backup must hold (or record as absent).

    Raises:
        ApplyError: dpkg --verify failed outright. TransportError: it could not run.
    """
    result = transport.run(dpkg.verify_argv(op.package, op.architecture), timeout=dpkg_timeout(timeout))
    # Exit 1 means "some files differ": the findings are on stdout.
    if result.exit_status not in (0, 1) or result.is_truncated:
        raise ApplyError(f"dpkg --verify {op.spec} failed (exit {result.exit_status}): "
                         f"{cap_output(result.stderr_text.strip(), 300)}")
    return dpkg.parse_verify(result.stdout_text)


# -- apply ----------------------------------------------------------------------------------------


def run_deb_install(op: DebInstallOp, deb: Path, agent: AgentApi, transport: Transport, *,
                    timeout: float) -> str:
    """Reinstall ``op``'s package from ``deb`` (a verified local copy of the blob); returns a note.

    Raises:
        ApplyError: the upload does not match its sha256, dpkg failed, or the package is not installed-ok
            at the operation's version afterwards.
        TransportError, CommandTimeoutError: a command could not run or hung.
    """
    install_deb(op, deb, upload_dir(agent), transport, timeout=timeout)
    status = status_of(transport, op.package, op.architecture, timeout=timeout)
    if status is None or not status.is_installed_ok or status.version != op.version:
        state = "gone" if status is None else f"{status.abbrev} at {status.version}"
        raise ApplyError(f"after the reinstall {op.spec} is {state}, not installed at {op.version}")
    return f"reinstalled {op.spec} {op.version} (a rollback restores its changed files, not dpkg's status)"


def install_deb(op: DebInstallOp, deb: Path, remote_dir: str, transport: Transport, *,
                timeout: float) -> None:
    """Upload, verify on the target, ``dpkg -i`` with services held; the upload and our policy-rc.d are
    removed whatever happens.

    Raises:
        ApplyError: the uploaded file does not match, or dpkg exited non-zero (lock held included).
        TransportError, CommandTimeoutError.
    """
    remote = upload_path(remote_dir, op.sha256)
    transport.check(["install", "-d", "-m", "0700", "--", remote_dir], timeout=timeout)
    transport.put_file(deb, remote, mode=0o600)
    try:
        got = transport.run(["sha256sum", "--", remote], timeout=timeout).stdout_text.split()
        if not got or got[0] != op.sha256:
            raise ApplyError(f"the .deb of {op.spec} uploaded to the target does not match its sha256")
        with services_held(transport, timeout=timeout):
            _raise_unless_ok(transport.run(dpkg.install_argv(remote), timeout=dpkg_timeout(timeout),
                                           max_output=256 * 1024), f"dpkg -i {op.spec}")
    finally:
        transport.run(["rm", "-f", "--", remote], timeout=timeout)


def run_dpkg_configure(op: DpkgConfigureOp, transport: Transport, *, timeout: float) -> str:
    """``dpkg --configure`` with services held back, as in the VM.

    Raises: ApplyError (dpkg exited non-zero, or a policy-rc.d is there), TransportError,
    CommandTimeoutError."""
    with services_held(transport, timeout=timeout):
        _raise_unless_ok(transport.run(dpkg.configure_argv(op.package), timeout=dpkg_timeout(timeout),
                                       max_output=256 * 1024), f"dpkg --configure {op.package}")
    what = "every pending package" if op.package == dpkg.ALL_PACKAGES else op.package
    return f"configured {what} (a rollback does not undo a configure)"


def _raise_unless_ok(result: CommandResult, what: str) -> None:
    if result.exit_status != 0:
        tail = " | ".join((result.stderr_text or result.stdout_text).strip().splitlines()[-6:])
        raise ApplyError(f"{what} exited {result.exit_status}: {cap_output(tail, 1500)}")


# -- rollback and recovery ------------------------------------------------------------------------


def settle(records: Sequence[PackageRecord], deb_of: Callable[[PackageRecord], Path], agent: AgentApi,
           transport: Transport, *, timeout: float,
           sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Before files are restored: finish every reinstall dpkg left unfinished (installing the same
    ``.deb`` again), remove our policy-rc.d and the uploaded ``.deb`` a crash left behind. Returns
    rollback errors: a package left worse than the backup found it (installed-ok before, not now), or
    dpkg still locked by another process. Never raises: a rollback always goes on to restore the files."""
    errors: list[str] = []
    try:
        transport.run(dpkg.release_services_argv(), timeout=timeout)
    except VmRepairError as exc:
        errors.append(f"cannot remove {dpkg.POLICY_RC} (if a crash left it): {exc.message}")
    for record in records:
        # Only when dpkg did not finish does the reinstall below upload (and remove) it again: a crash
        # after the upload and before dpkg, or after dpkg and before the removal, leaves it otherwise.
        remote = upload_path(upload_dir(agent), record.sha256)
        try:
            transport.run(["rm", "-f", "--", remote], timeout=timeout)
        except VmRepairError as exc:   # litter, not damage: the target's files are restored regardless
            log.warning("cannot remove %s an interrupted reinstall uploaded: %s", remote, exc.message)
    for record in records:
        try:
            error = _settle_one(record, deb_of(record), agent, transport, timeout=timeout, sleep=sleep)
        except VmRepairError as exc:
            error = f"package {record.spec}: {exc.message}"
        if error is not None:
            errors.append(error)
    return errors


def _settle_one(record: PackageRecord, deb: Path, agent: AgentApi, transport: Transport, *,
                timeout: float, sleep: Callable[[float], None]) -> str | None:
    op = DebInstallOp(record.package, record.version, record.architecture, record.sha256, deb.stat().st_size)
    for attempt in range(LOCK_RETRIES + 1):
        status = status_of(transport, record.package, record.architecture, timeout=timeout)
        if status is not None and status.is_installed_ok and status.version == record.version:
            return None
        log.warning("%s is %s after an interrupted reinstall: installing %s again", record.spec,
                    status.abbrev if status else "gone", record.version)
        try:
            install_deb(op, deb, upload_dir(agent), transport, timeout=timeout)
        except ApplyError as exc:
            if dpkg.is_lock_error(exc.message) and attempt < LOCK_RETRIES:
                sleep(LOCK_WAIT_S)
                continue
            was_ok = record.status == "ii"
            if not was_ok:   # it was not configured before either: the state it was in, not a failure
                log.warning("%s stays unconfigured, as before the apply: %s", record.spec, exc.message)
                return None
            return f"package {record.spec} left unfinished by dpkg ({exc.message}); " \
                   "finish it with `dpkg --configure -a` on the target"
    return None
