"""``dpkg --verify`` answers of one host, reused while the packages' files are unchanged.

``--verify`` hashes every file of the packages it is given: under TCG the template's eight package
sets cost about 6 s of guest CPU per probe round (systemd alone 1.8 s), and a repair runs four full
rounds and a dozen stability rounds, most of them over files nothing touched. The agent's
``dpkg_fingerprint`` (one lstat per packaged file, milliseconds) says whether any of those files, their
``.list``/``.md5sums`` records or dpkg's status file changed: content cannot change without changing a
file's ctime, which nobody can set back. So an answer is reused only while the fingerprint taken just
before a later verify equals the one taken just before the answer's own verify, and is kept only when
no file changed within the last two seconds (a later change in the same clock tick could share its
ctime: "racy", as git calls its index entries). A reverted VM snapshot restores files and their
ctimes together, so the rule holds across reverts too.

Any doubt verifies: an agent that cannot fingerprint, a fingerprint that fails, a verify that failed or
whose output was cut.

With a :class:`~orchestrator.detect.answer_store.AnswerStore`, answers also outlive the Detector (the
next process of the same scope starts warm), under the same rule.

Batches run at once on one Detector (a stability round beside the regression check) ask for the same
packages at the same fingerprint: the second waits for the first's verify instead of hashing the same
files again (seen twice in one round of a target's validation, 1.2 s of guest CPU each).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from orchestrator.detect.answer_store import AnswerStore
from orchestrator.errors import VmRepairError
from orchestrator.transport.base import CommandResult


@runtime_checkable
class Fingerprinting(Protocol):
    def dpkg_fingerprint(self, binaries: Sequence[str]) -> tuple[str, bool]:
        """Raises: AgentError, TransportError."""
        ...


class VerifyCache:
    """Per host (a Detector's lifetime): binaries -> (fingerprint, the verify answer it held for)."""

    def __init__(self, agent: Fingerprinting, store: AnswerStore | None = None) -> None:
        self._agent = agent
        self._store = store
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], tuple[str, CommandResult]] = {}
        #: (binaries, fingerprint) -> the verify under way for them, which others wait for.
        self._running: dict[tuple[tuple[str, ...], str], concurrent.futures.Future[CommandResult | None]] = {}
        self.reused = 0

    def verify(self, binaries: Sequence[str],
               run: Callable[[], CommandResult | None]) -> tuple[CommandResult | None, bool]:
        """The answer of ``run`` (``dpkg --verify -- binaries``), or the kept one when nothing it
        looked at changed; the flag says which.

        Raises: what ``run`` raises (CommandTimeoutError, TransportError)."""
        key = tuple(binaries)
        try:
            fingerprint, racy = self._agent.dpkg_fingerprint(key)
        except VmRepairError:
            return run(), False
        if racy:
            return self._run(key, fingerprint, racy, run), False
        with self._lock:
            kept = self._answers.get(key)
        held = kept[1] if kept is not None and kept[0] == fingerprint else \
            self._store.verify(key, fingerprint) if self._store is not None else None
        if held is not None:
            with self._lock:
                self.reused += 1
                self._answers[key] = (fingerprint, held)
            return held, True
        mine: concurrent.futures.Future[CommandResult | None] = concurrent.futures.Future()
        with self._lock:
            running = self._running.setdefault((key, fingerprint), mine)
        if running is not mine:
            # Its errors are its own caller's; here an error or an answer not worth keeping means
            # asking again.
            shared = None if running.exception() is not None else running.result()
            if shared is not None and _reliable(shared):
                with self._lock:
                    self.reused += 1
                return shared, True
            return self._run(key, fingerprint, racy, run), False
        try:
            result = self._run(key, fingerprint, racy, run)
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._running.pop((key, fingerprint), None)
        mine.set_result(result)
        return result, False

    def _run(self, key: tuple[str, ...], fingerprint: str, racy: bool,
             run: Callable[[], CommandResult | None]) -> CommandResult | None:
        """Raises: what ``run`` raises."""
        result = run()
        reliable = result is not None and _reliable(result)
        with self._lock:
            if reliable and not racy and result is not None:
                self._answers[key] = (fingerprint, result)
            else:
                self._answers.pop(key, None)
        if reliable and not racy and result is not None and self._store is not None:
            self._store.keep_verify(key, fingerprint, result)
        return result


def _reliable(result: CommandResult) -> bool:
    """An answer worth keeping: dpkg finished (0: intact, 1: differences) and nothing was cut."""
    return result.exit_status in (0, 1) and not result.is_truncated
