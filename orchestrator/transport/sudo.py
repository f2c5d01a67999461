"""Run as root over a non-root login: every command through ``sudo -n --``, files staged privately.

vmrepair reads and repairs system files, so it needs root on the host. Many hosts refuse root logins
over SSH; :class:`SudoTransport` wraps the login user's transport so the rest of vmrepair does not
know the difference:

* a command runs as ``sudo -n -- ARGV...``: still an argv (the remote side quotes it like any other),
  and ``-n`` makes a sudo that wants a password fail at once instead of hanging on a prompt nobody
  answers; that refusal is recognised from sudo's stderr and raised as :class:`SudoError`;
* a file is moved by SFTP as the login user through a private directory (``mktemp -d``, mode 0700)
  and copied between that directory and its real place as root by a fixed ``sh -c`` script. The
  paths reach the script only as positional arguments (``sh -c SCRIPT sh ARG...``), never inside
  its text, so no path can change what the script does.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import FileTransferError, SudoError, TransportError
from orchestrator.transport.base import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    OutputSink,
    Transport,
    require_absolute,
    validate_argv,
)
from orchestrator.transport.stream import CommandStream

log = logging.getLogger(__name__)

#: Prefix of every command: -n never prompts (no one is there to answer), -- ends sudo's options.
SUDO = ("sudo", "-n", "--")

#: Installs the staged file $1 as $2 (in directory $3) with mode $4 ("" keeps mktemp's 0600): a temp
#: file created exclusively beside the target, then renamed over it, so readers see the old file or
#: the new one, never half of one. Runs as root; the paths are only ever positional arguments.
PUT_SCRIPT = (
    'set -eu; tmp=$(mktemp "$3/.vmrepair-put.XXXXXXXXXX"); trap \'rm -f -- "$tmp"\' EXIT; '
    'cat -- "$1" > "$tmp"; if [ -n "$4" ]; then chmod "$4" "$tmp"; fi; '
    'mv -f -- "$tmp" "$2"; trap - EXIT'
)
#: Copies $1 as root into the staged path $2 owned by the login user $3. With a limit $4, a file
#: larger than it is refused before anything is copied (exit TOO_LARGE_EXIT, its size on stdout), and
#: the copy stops one byte past it should the file grow meanwhile: /tmp is never filled by a runaway
#: log, and the download's own max_bytes check then reports the growth.
GET_SCRIPT = (
    'set -eu; if [ -n "$4" ]; then size=$(stat -L -c %s -- "$1"); '
    'if [ "$size" -gt "$4" ]; then echo "$size"; exit 97; fi; '
    'head -c "$(($4 + 1))" -- "$1" > "$2"; else cat -- "$1" > "$2"; fi; '
    'chown -- "$3" "$2"; chmod 0600 "$2"'
)
TOO_LARGE_EXIT = 97
#: Name of the file inside the private directory (the directory is fresh per transfer).
STAGED_NAME = "payload"

#: What sudo says when it will not run a command for this user without a password (-n).
_REFUSALS = ("a password is required", "a terminal is required", "not in the sudoers",
             "is not allowed to execute", "may not run sudo", "must have a tty")
#: sudo's own "sudo: CMD: command not found" (exit 1); other transports report 127 for it.
_NOT_FOUND = re.compile(r"^sudo: .*: command not found$", re.MULTILINE)


class SudoTransport(Transport):
    """Runs as root on a host reached as ``login_user`` (not root) through ``inner``.

    Raises: what ``inner`` raises, and
        SudoError: sudo wants a password, refuses this user or is not installed.
        FileTransferError: a file could not be staged, installed or fetched.
    """

    def __init__(self, inner: Transport, *, login_user: str) -> None:
        self.inner = inner
        self.login_user = login_user
        self.host = inner.host
        self._sudo_checked = False

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        on_output: OutputSink | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        args = validate_argv(argv, host=self.host)
        result = self.inner.run([*SUDO, *args], timeout=timeout, stdin=stdin, on_output=on_output,
                                max_output=max_output)
        self._raise_if_refused(result)
        self._sudo_checked = True
        if result.exit_status == 1 and _NOT_FOUND.search(result.stderr_text):
            # Callers (the agent's "is python3 installed?" hint) read 127 as "no such program".
            result = replace(result, exit_status=127)
        # The caller's argv, not the wrapped one: messages name the command that was asked for.
        return replace(result, argv=args)

    def open_stream(self, argv: Sequence[str]) -> CommandStream | None:
        args = validate_argv(argv, host=self.host)
        if not self._sudo_checked:
            # A stream whose sudo refused would only look like a command that died; ask sudo once
            # so the refusal is reported as what it is.
            self.run(["true"])
        return self.inner.open_stream([*SUDO, *args])

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        require_absolute(remote, host=self.host)
        directory = posixpath.dirname(remote)
        with self._staging(f"upload to {remote}") as staged:
            self.inner.put_file(local, staged)
            wanted = "" if mode is None else f"{mode:04o}"
            self._as_root(["sh", "-c", PUT_SCRIPT, "sh", staged, remote, directory, wanted],
                          f"install {remote}")

    def get_file(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        require_absolute(remote, host=self.host)
        with self._staging(f"download of {remote}") as staged:
            limit = "" if max_bytes is None else str(max_bytes)
            result = self.run(["sh", "-c", GET_SCRIPT, "sh", remote, staged, self.login_user, limit])
            if result.exit_status == TOO_LARGE_EXIT and result.stdout_text.strip().isdigit():
                raise FileTransferError(
                    f"{self.host}: {remote} is {result.stdout_text.strip()} bytes, larger than the"
                    f" {max_bytes} allowed", host=self.host)
            self._require_success(result, f"copy {remote}")
            self.inner.get_file(staged, local, max_bytes=max_bytes)

    def close(self) -> None:
        self.inner.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _as_root(self, argv: list[str], action: str) -> None:
        self._require_success(self.run(argv), action)

    def _require_success(self, result: CommandResult, action: str) -> None:
        if not result.succeeded:
            tail = " | ".join(result.stderr_text.strip().splitlines()[-3:])
            raise FileTransferError(f"{self.host}: {action} as root failed (exit"
                                    f" {result.exit_status}): {tail}", host=self.host)

    @contextlib.contextmanager
    def _staging(self, action: str) -> Iterator[str]:
        """A fresh private directory of the login user (0700, mktemp), removed on the way out; yields
        the path of the staged file inside it."""
        made = self.inner.run(["mktemp", "-d"], max_output=4096)
        directory = made.stdout_text.strip()
        if not made.succeeded or "\n" in directory or not posixpath.isabs(directory):
            raise FileTransferError(
                f"{self.host}: {action} failed: cannot make a private directory as"
                f" {self.login_user} (mktemp -d exited {made.exit_status}:"
                f" {made.stderr_text.strip()[-200:]!r})", host=self.host)
        try:
            yield posixpath.join(directory, STAGED_NAME)
        finally:
            # Best effort: a leftover in the login user's own 0700 directory exposes nothing, and
            # failing the transfer over it would be worse.
            with contextlib.suppress(TransportError):
                removed = self.inner.run(["rm", "-rf", "--", directory], max_output=4096)
                if not removed.succeeded:
                    log.warning("%s: could not remove %s: %s", self.host, directory,
                                removed.stderr_text.strip()[-200:])

    def _raise_if_refused(self, result: CommandResult) -> None:
        # sudo exits 1 and says why near the top (after warnings such as "unable to resolve host");
        # a command that sudo did run keeps its own status and stderr.
        lines = result.stderr_text[:2000].strip().splitlines()
        said = [line for line in lines[:5] if any(refusal in line for refusal in _REFUSALS)]
        head = said[0] if said else (lines or [""])[0]
        grant = (f"let {self.login_user} run commands as root without a password: put the line"
                 f" `{self.login_user} ALL=(root) NOPASSWD: ALL` in /etc/sudoers.d/vmrepair (edit it"
                 " with visudo -f), or log in as root")
        if result.exit_status == 1 and said:
            needs_tty = "must have a tty" in head
            raise SudoError(
                f"{self.host}: sudo refused to run a command as root for {self.login_user}: {head}",
                host=self.host,
                remedy=f"add `Defaults:{self.login_user} !requiretty` to the sudoers file (visudo)"
                if needs_tty else grant,
            )
        if result.exit_status == 127 and "sudo" in head and "not found" in head:
            raise SudoError(f"{self.host}: sudo is not installed (logged in as {self.login_user},"
                            " not root)", host=self.host,
                            remedy="install sudo on the host (apt-get install sudo), then " + grant)
