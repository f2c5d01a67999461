"""The one error tree of vmrepair.

Every error vmrepair raises derives from :class:`VmRepairError`. Third-party errors (libvirt, paramiko,
pydantic, OSError from subprocess plumbing) are translated at the boundary of the seam that talks to them,
so callers only ever catch classes from this module::

    VmRepairError
    ├── ConfigError                 bad config / template / playbook file (names file and key path)
    │   └── PlaybookError           an invalid playbook file, or two playbooks that clash
    ├── ImageError                  template image build or image store problem
    │   ├── ImageNotBuiltError      the template has no complete build in the store
    │   ├── ImageBuildError         a build step failed (names the step and its log)
    │   └── LayerError              a host layer cannot be planned, fetched or built (names the step)
    ├── HypervisorError             libvirt / QEMU / disk overlay problems
    │   ├── HypervisorUnavailableError  libvirtd cannot be reached
    │   ├── VmNotFoundError
    │   ├── VmExistsError
    │   ├── StaleVmError            leftovers of a crashed run block a name
    │   ├── SnapshotError
    │   └── BootError               guest never became reachable (names the serial log)
    ├── TransportError              running commands / moving files on a host
    │   ├── ConnectError            cannot connect (refused, DNS, auth)
    │   ├── SessionRefusedError     the server would not open one more session (MaxSessions); nothing ran
    │   ├── HostKeyError            host key does not match the pinned key
    │   ├── KeyFileError            key file missing or unsafe permissions
    │   ├── SudoError               a non-root login cannot run a command as root (no NOPASSWD sudo)
    │   ├── CommandTimeoutError     a command exceeded its wall-clock deadline
    │   ├── CommandFailedError      a command that had to succeed exited non-zero
    │   ├── FileTransferError       SFTP / local copy failed
    │   ├── AgentError              the target-side agent failed or answered something malformed
    │   │   └── AgentFailedError    the agent ran and refused (code: precondition, nospace, ...)
    │   └── GuestCheckError         a testinfra check could not give an answer
    ├── StateError                  state dir unusable (permissions, disk full)
    │   ├── StateCorruptError       the state store (SQLite) or a journal cannot be trusted: refuse to act
    │   └── LockHeldError           another vmrepair process holds the state lock (names pid and command)
    ├── RebootError                 a reboot could not be scheduled, done, or the target did not come back
    ├── NotifyError                 a notifier (webhook, command) failed; never stops a repair
    │   └── NotifyTransientError    a delivery that may succeed when tried again (5xx, timeout, refused)
    ├── AuditError                  the audit log cannot be written, or a JSON-lines file is unusable
    ├── QuarantineError             isolating or releasing a component failed or was refused
    ├── DaemonError                 the daemon cannot start (socket path in the way, bad peer, ...)
    ├── FixPackageError             a fix package is invalid, unsafe or tampered with
    ├── ApplyError                  applying a fix package to a target failed or was refused
    ├── RepairStepError             a step of a repair strategy failed (the attempt fails)
    ├── StepNotApplicableError      a strategy cannot run here (no baseline, no offender): skip it
    ├── FleetError                  a fleet bundle or signing key is refused (names the reason and remedy)
    └── PipelineError               a repair run cannot proceed (target unreachable, no sandbox, ...)

Errors carry context attributes (``file``, ``step``, ``host``, ``domain`` ...) and an optional
``remedy`` that the CLI prints under the message. Only the CLI turns them into exit codes.
"""

from __future__ import annotations


class VmRepairError(Exception):
    """Root of every error vmrepair raises on purpose."""

    #: Process exit code the CLI uses for this class of error.
    exit_code: int = 1

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message


class ConfigError(VmRepairError):
    """A config, template or playbook file is missing, malformed or invalid."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.file = file


class ImageError(VmRepairError):
    """Problem with a template image or the image store."""

    exit_code = 3


class ImageNotBuiltError(ImageError):
    """The template has no complete, matching build in the image store."""


class ImageBuildError(ImageError):
    """A build step failed."""

    def __init__(
        self, message: str, *, step: str, log: str | None = None, remedy: str | None = None
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.step = step
        self.log = log


class LayerError(ImageError):
    """A host layer (the target's packages over a template) cannot be planned, fetched or built."""

    def __init__(self, message: str, *, step: str, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.step = step


class HypervisorError(VmRepairError):
    """libvirt, QEMU or disk-overlay failure."""

    exit_code = 4

    def __init__(self, message: str, *, domain: str | None = None, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.domain = domain


class HypervisorUnavailableError(HypervisorError):
    """libvirtd cannot be reached."""


class VmNotFoundError(HypervisorError):
    """No vmrepair VM of that name."""


class VmExistsError(HypervisorError):
    """A VM of that name already exists."""


class StaleVmError(HypervisorError):
    """Leftovers of a crashed run (overlay without domain, or the reverse) block the name."""


class SnapshotError(HypervisorError):
    """Snapshot create/revert/delete failed or the snapshot does not exist."""


class BootError(HypervisorError):
    """The guest did not become reachable over SSH before its deadline."""

    def __init__(
        self,
        message: str,
        *,
        domain: str | None = None,
        serial_log: str | None = None,
        remedy: str | None = None,
    ) -> None:
        super().__init__(message, domain=domain, remedy=remedy)
        self.serial_log = serial_log


class TransportError(VmRepairError):
    """Running a command or moving a file on a host failed."""

    exit_code = 5

    def __init__(self, message: str, *, host: str | None = None, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.host = host


class ConnectError(TransportError):
    """The host could not be reached or refused authentication."""


class SessionRefusedError(TransportError):
    """The server refused to open a session on a live connection (OpenSSH's MaxSessions, counting
    sessions it has not finished closing): no command started, so asking again is safe."""


class HostKeyError(TransportError):
    """The host presented a key that does not match the pinned key."""


class KeyFileError(TransportError):
    """A private key file is missing or has unsafe ownership/permissions."""


class SudoError(TransportError):
    """A non-root login could not run a command as root: sudo wants a password, refuses or is missing."""


class CommandTimeoutError(TransportError):
    """A command ran past its wall-clock deadline and was abandoned."""

    def __init__(
        self, message: str, *, host: str | None = None, argv: list[str] | None = None
    ) -> None:
        super().__init__(message, host=host)
        self.argv = argv or []


class FileTransferError(TransportError):
    """Copying a file to or from a host failed."""


class StateError(VmRepairError):
    """The state directory is unusable (permissions, disk full, corrupt entries)."""

    exit_code = 6


class StateCorruptError(StateError):
    """The state store or a journal is unreadable or fails its integrity check: vmrepair refuses to act
    rather than guess what state the targets are in."""


class LockHeldError(StateError):
    """Another vmrepair process holds the state lock."""

    def __init__(self, message: str, *, holder: str = "", remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.holder = holder


class RebootError(VmRepairError):
    """A reboot could not be scheduled or performed, or the target did not come back in time."""

    exit_code = 13


class NotifyError(VmRepairError):
    """A notifier failed (webhook unreachable, command non-zero). Logged; never stops a repair."""


class NotifyTransientError(NotifyError):
    """A delivery failed in a way that may pass when tried again: the receiver answered 5xx, did not
    answer in time, or could not be reached. A 4xx or a redirect is a plain :class:`NotifyError`:
    sending the same request again would get the same answer."""


class AuditError(VmRepairError):
    """The audit log cannot be appended to, or a JSON-lines file cannot be verified or repaired."""

    exit_code = 14


class QuarantineError(VmRepairError):
    """Isolating or releasing a component failed or was refused."""

    exit_code = 15


class DaemonError(VmRepairError):
    """The daemon cannot start or serve (socket path in the way, unsafe directory, ...)."""

    exit_code = 16


class CommandFailedError(TransportError):
    """A command that had to succeed exited non-zero (carries the result's exit status and stderr)."""

    def __init__(
        self, message: str, *, host: str | None = None, exit_status: int, stderr: str = ""
    ) -> None:
        super().__init__(message, host=host)
        self.exit_status = exit_status
        self.stderr = stderr


class AgentError(TransportError):
    """The target-side agent failed, or its answer was malformed, oversized or inconsistent."""


class FixPackageError(VmRepairError):
    """A fix package is invalid (path outside allowed roots, placeholder touched) or tampered with."""

    exit_code = 7


class ApplyError(VmRepairError):
    """Applying a fix package was refused (target changed since capture) or failed."""

    exit_code = 8


class PipelineError(VmRepairError):
    """A repair run cannot proceed; names the stage."""

    exit_code = 9

    def __init__(self, message: str, *, stage: str, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        self.stage = stage


class PlaybookError(ConfigError):
    """A playbook file is invalid (names file and key path), or playbooks clash (names both files)."""


class RepairStepError(VmRepairError):
    """A step of a repair strategy failed or was refused; the attempt fails and the VM is reverted."""

    def __init__(
        self, message: str, *, strategy: str, step: str, remedy: str | None = None
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.strategy = strategy
        self.step = step


class StepNotApplicableError(VmRepairError):
    """A strategy cannot run in this situation (no baseline, no offending file found, nothing to do).

    Not a failure: the strategy is skipped and does not count against its success rate.
    """

    def __init__(self, message: str, *, strategy: str = "", step: str = "") -> None:
        super().__init__(message)
        self.strategy = strategy
        self.step = step


class AgentFailedError(AgentError):
    """The agent ran and answered ``ok: false``.

    ``code`` says why: ``precondition`` (the host changed since capture, e.g. a file's hash differs),
    ``not_found``, ``nospace``, ``invalid`` (refused: bad path, symlink in the way, ...) or ``io``.
    """

    def __init__(
        self, message: str, *, host: str, op: str, code: str, remedy: str | None = None
    ) -> None:
        super().__init__(message, host=host, remedy=remedy)
        self.op = op
        self.code = code


class GuestCheckError(TransportError):
    """A testinfra check could not give an answer: the guest's output was unexpected, a needed tool
    is missing, or systemd is not running. Validation counts it as a failure, never as a pass."""


class FleetError(VmRepairError):
    """A fleet bundle was refused (unknown or revoked key, bad signature, expired, replayed, malformed)
    or a fleet signing key cannot be created, read or trusted. The message names the reason, the
    remedy says what to do; nothing was imported or changed."""

    exit_code = 17
